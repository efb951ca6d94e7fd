"""AMD GPUs (ROCm) from the kfd topology in sysfs and the /dev/kfd + /dev/dri/renderD* nodes.

A GPU is a kfd topology node with `simd_count > 0`; its render node comes from
`drm_render_minor`. Every plugin path is resolved under `root` so tests use recorded trees.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.contract import DeviceInfo
from agent.devices._sysfs import read_int, read_numa_node, read_properties, read_text, under
from agent.devices.base import DeviceMetrics, Reservation

KFD_TOPOLOGY = "/sys/class/kfd/kfd/topology/nodes"


class AmdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("/"), description="Filesystem root (fixtures in tests).")
    shares: Decimal | None = Field(default=None, gt=0)


class AmdDevicePlugin:
    def __init__(self, *, name: str = "amd", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.error: str | None = None
        self.options = AmdOptions.model_validate(dict(options or {}))

    def discover(self) -> list[DeviceInfo]:
        root = self.options.root
        if not under(root, "/dev/kfd").exists():
            self.error = "no AMD devices: /dev/kfd is missing (amdgpu driver not loaded)"
            return []
        topology = under(root, KFD_TOPOLOGY)
        nodes = sorted(
            (p for p in topology.glob("*") if p.name.isdigit()), key=lambda p: int(p.name)
        )
        devices: list[DeviceInfo] = []
        for node in nodes:
            props = read_properties(node / "properties")
            if int(props.get("simd_count", "0")) <= 0:
                continue  # a CPU node
            minor = props.get("drm_render_minor")
            gpu_id = read_text(node / "gpu_id") or props.get("gpu_id", node.name)
            if minor is None:
                continue
            drm_device = under(root, f"/sys/class/drm/renderD{minor}/device")
            model = read_text(drm_device / "product_name") or (
                f"AMD GPU 0x{int(props.get('device_id', '0')):04x}"
            )
            devices.append(
                DeviceInfo(
                    id=f"rocm-{gpu_id}",
                    plugin=self.name,
                    slot_name="rocm.device",
                    model=model,
                    memory_bytes=_vram_bytes(node),
                    numa_node=read_numa_node(drm_device / "numa_node"),
                    share_slot_name="rocm.shares" if self.options.shares else None,
                    share_capacity=self.options.shares,
                    attributes={
                        "index": str(len(devices)),
                        "render_node": f"/dev/dri/renderD{minor}",
                        "gpu_id": gpu_id,
                    },
                )
            )
        self.error = None if devices else "no AMD devices: kfd topology lists no GPU"
        return devices

    def reserve(self, device_ids: Sequence[str]) -> Reservation:
        by_id = {device.id: device for device in self.discover()}
        chosen = [by_id[device_id] for device_id in device_ids]
        indices = ",".join(device.attributes["index"] for device in chosen)
        return Reservation(
            env={"HIP_VISIBLE_DEVICES": indices, "ROCR_VISIBLE_DEVICES": indices},
            device_nodes=["/dev/kfd", *(device.attributes["render_node"] for device in chosen)],
        )

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]:
        by_id = {device.id: device for device in self.discover()}
        result = []
        for device_id in device_ids:
            device = by_id.get(device_id)
            if device is None:
                continue
            minor = device.attributes["render_node"].removeprefix("/dev/dri/renderD")
            drm = under(self.options.root, f"/sys/class/drm/renderD{minor}/device")
            busy = read_int(drm / "gpu_busy_percent")
            used = read_int(drm / "mem_info_vram_used")
            result.append(
                DeviceMetrics(
                    device_id=device_id,
                    utilization_pct=None if busy is None else float(busy),
                    memory_used_bytes=used,
                )
            )
        return result


def _vram_bytes(node: Path) -> int:
    total = 0
    for bank in node.glob("mem_banks/*/properties"):
        props = read_properties(bank)
        # heap_type 1 and 2 are public/private frame-buffer (VRAM) heaps in the kfd ABI.
        if props.get("heap_type") in ("1", "2"):
            total += int(props.get("size_in_bytes", "0"))
    return total
