"""A configurable fake accelerator for GPU-less machines, tests and demos.

It sets the same visibility variables a real plugin of its `kind` would, so a workload (and a
test) can check exactly which devices it was given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.contract import DeviceInfo
from agent.devices.base import DeviceMetrics, Reservation

VISIBILITY_ENV: dict[str, tuple[str, ...]] = {
    "cuda": ("CUDA_VISIBLE_DEVICES",),
    "rocm": ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"),
    "tpu": ("TPU_VISIBLE_CHIPS",),
}


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=4, ge=0, le=1024)
    kind: str = Field(default="cuda", pattern=r"^[a-z][a-z0-9_.-]*$")
    model: str = "Berth FakeGPU"
    memory_bytes: int = Field(default=16 * 1024**3, ge=0)
    numa_nodes: int = Field(default=1, ge=1, description="Devices are spread round-robin.")
    shares: Decimal | None = Field(
        default=None, gt=0, description="Shares per device in '<kind>.shares' when set."
    )


class FakeDevicePlugin:
    def __init__(self, *, name: str = "fake", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.error: str | None = None
        self.options = FakeOptions.model_validate(dict(options or {}))
        self._prefix = name.replace(":", "-")

    def discover(self) -> list[DeviceInfo]:
        opts = self.options
        return [
            DeviceInfo(
                id=f"{self._prefix}-{opts.kind}-{index}",
                plugin=self.name,
                slot_name=f"{opts.kind}.device",
                model=opts.model,
                memory_bytes=opts.memory_bytes,
                numa_node=index % opts.numa_nodes,
                share_slot_name=f"{opts.kind}.shares" if opts.shares else None,
                share_capacity=opts.shares,
                attributes={"index": str(index)},
            )
            for index in range(opts.count)
        ]

    def reserve(self, device_ids: Sequence[str]) -> Reservation:
        by_id = {device.id: device for device in self.discover()}
        indices = [by_id[device_id].attributes["index"] for device_id in device_ids]
        names = VISIBILITY_ENV.get(
            self.options.kind, (f"BERTH_{self.options.kind.upper()}_VISIBLE_DEVICES",)
        )
        env = {var: ",".join(indices) for var in names}
        env["BERTH_FAKE_DEVICE_IDS"] = ",".join(device_ids)
        return Reservation(env=env)

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]:
        known = {device.id for device in self.discover()}
        return [
            DeviceMetrics(device_id=device_id, utilization_pct=0.0, memory_used_bytes=0)
            for device_id in device_ids
            if device_id in known
        ]
