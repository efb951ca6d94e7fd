"""Generic NPU plugin: a device-node glob, a visibility variable and a slot name.

Presets give the usual layout of Intel Gaudi, FuriosaAI, Rebellions and AWS Neuron; every
preset value can be overridden in the options, and a vendor without a preset is configured
with `device_glob`, `visible_env` and `vendor` alone. Run one instance per vendor with
`device_plugins = ["npu:gaudi", "npu:neuron"]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.contract import DeviceInfo
from agent.devices._sysfs import host_path, read_numa_node, under
from agent.devices.base import DeviceMetrics, Reservation

PRESETS: dict[str, dict[str, Any]] = {
    "gaudi": {
        "vendor": "gaudi",
        "device_glob": "/dev/accel/accel[0-9]*",
        "visible_env": "HABANA_VISIBLE_DEVICES",
        "model": "Intel Gaudi",
    },
    "furiosa": {
        "vendor": "furiosa",
        "device_glob": "/dev/rngd/npu[0-9]*",
        "visible_env": "FURIOSA_DEVICES",
        "model": "FuriosaAI RNGD",
    },
    "rebellions": {
        "vendor": "rebellions",
        "device_glob": "/dev/rbln[0-9]*",
        "visible_env": "RBLN_DEVICES",
        "model": "Rebellions ATOM",
    },
    "neuron": {
        "vendor": "neuron",
        "device_glob": "/dev/neuron[0-9]*",
        "visible_env": "AWS_NEURON_VISIBLE_DEVICES",
        "model": "AWS Neuron",
    },
}
_INDEX_RE = re.compile(r"(\d+)$")


class NpuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(default=None, description=f"One of {sorted(PRESETS)}.")
    vendor: str = Field(default="", pattern=r"^[a-z0-9_-]*$")
    device_glob: str = Field(default="", description="Absolute glob of the device nodes.")
    visible_env: str = Field(default="", description="Variable listing the visible indices.")
    slot_name: str = Field(default="", description="Defaults to npu.<vendor>.device.")
    extra_device_nodes: list[str] = Field(
        default_factory=list, description="Nodes every container needs (control devices)."
    )
    model: str = ""
    memory_bytes: int = Field(default=0, ge=0)
    root: Path = Field(default=Path("/"), description="Filesystem root (fixtures in tests).")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset"):
            preset = PRESETS.get(data["preset"])
            if preset is None:
                known = sorted(PRESETS)
                raise ValueError(f"unknown npu preset {data['preset']!r}; known: {known}")
            return {**preset, **data}
        return data

    @model_validator(mode="after")
    def _complete(self) -> NpuOptions:
        if not (self.vendor and self.device_glob and self.visible_env):
            raise ValueError("npu plugin needs a preset or vendor, device_glob and visible_env")
        if not self.device_glob.startswith("/"):
            raise ValueError("device_glob must be absolute")
        if not self.slot_name:
            self.slot_name = f"npu.{self.vendor}.device"
        return self


class NpuDevicePlugin:
    def __init__(self, *, name: str = "npu", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.error: str | None = None
        opts = dict(options or {})
        if "preset" not in opts and "vendor" not in opts and ":" in name:
            # `npu:gaudi` with no options means the gaudi preset.
            opts["preset"] = name.split(":", 1)[1]
        self.options = NpuOptions.model_validate(opts)

    def discover(self) -> list[DeviceInfo]:
        opts = self.options
        root = opts.root
        nodes = []
        for path in root.glob(opts.device_glob.lstrip("/")):
            match = _INDEX_RE.search(path.name)
            if match:
                nodes.append((int(match.group(1)), path))
        devices = []
        for index, path in sorted(nodes):
            sysfs = under(root, f"/sys/class/{path.parent.name}/{path.name}/device")
            if path.parent.name == "dev":
                sysfs = under(root, f"/sys/class/{opts.vendor}/{path.name}/device")
            devices.append(
                DeviceInfo(
                    id=f"{opts.vendor}-{index}",
                    plugin=self.name,
                    slot_name=opts.slot_name,
                    model=opts.model or f"{opts.vendor} NPU",
                    memory_bytes=opts.memory_bytes,
                    numa_node=read_numa_node(sysfs / "numa_node"),
                    attributes={"index": str(index), "device_node": host_path(root, path)},
                )
            )
        missing = f"no {opts.vendor} devices: nothing at {opts.device_glob}"
        self.error = None if devices else missing
        return devices

    def reserve(self, device_ids: Sequence[str]) -> Reservation:
        by_id = {device.id: device for device in self.discover()}
        chosen = [by_id[device_id] for device_id in device_ids]
        return Reservation(
            env={self.options.visible_env: ",".join(d.attributes["index"] for d in chosen)},
            device_nodes=[
                *self.options.extra_device_nodes,
                *(d.attributes["device_node"] for d in chosen),
            ],
        )

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]:
        known = {device.id for device in self.discover()}
        return [DeviceMetrics(device_id=d) for d in device_ids if d in known]
