"""Google TPUs: /dev/accelN chips (TPU v4 style) or VFIO groups of PCI vendor 0x1ae0 (v5e+).

Paths resolve under `root` so tests use recorded layouts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.contract import DeviceInfo
from agent.devices._sysfs import read_numa_node, read_text, under
from agent.devices.base import DeviceMetrics, Reservation

GOOGLE_PCI_VENDOR = "0x1ae0"
_ACCEL_RE = re.compile(r"^accel(\d+)$")


class TpuOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path = Field(default=Path("/"), description="Filesystem root (fixtures in tests).")
    model: str | None = Field(default=None, description="Model name to report, e.g. 'TPU v4'.")
    memory_bytes: int = Field(default=0, ge=0, description="HBM per chip, when known.")


class TpuDevicePlugin:
    def __init__(self, *, name: str = "tpu", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.error: str | None = None
        self.options = TpuOptions.model_validate(dict(options or {}))

    def discover(self) -> list[DeviceInfo]:
        chips = self._accel_chips() or self._vfio_chips()
        self.error = None if chips else "no TPU devices: no /dev/accel* or Google VFIO group"
        return chips

    def reserve(self, device_ids: Sequence[str]) -> Reservation:
        by_id = {device.id: device for device in self.discover()}
        chosen = [by_id[device_id] for device_id in device_ids]
        nodes = [device.attributes["device_node"] for device in chosen]
        if any(node.startswith("/dev/vfio/") for node in nodes):
            nodes = ["/dev/vfio/vfio", *nodes]
        return Reservation(
            env={"TPU_VISIBLE_CHIPS": ",".join(d.attributes["index"] for d in chosen)},
            device_nodes=nodes,
        )

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]:
        known = {device.id for device in self.discover()}
        # Chip utilisation is only exposed through libtpu's runtime metrics, not sysfs.
        return [DeviceMetrics(device_id=d) for d in device_ids if d in known]

    def _accel_chips(self) -> list[DeviceInfo]:
        root = self.options.root
        found = []
        for node in under(root, "/dev").glob("accel*"):
            match = _ACCEL_RE.match(node.name)
            if match:
                found.append((int(match.group(1)), node.name))
        chips: list[DeviceInfo] = []
        for index, node_name in sorted(found):
            pci = under(root, f"/sys/class/accel/{node_name}/device")
            chips.append(
                self._chip(
                    index=len(chips),
                    device_id=f"tpu-{index}",
                    device_node=f"/dev/{node_name}",
                    pci=pci,
                )
            )
        return chips

    def _vfio_chips(self) -> list[DeviceInfo]:
        root = self.options.root
        groups = sorted(
            (p for p in under(root, "/dev/vfio").glob("*") if p.name.isdigit()),
            key=lambda p: int(p.name),
        )
        chips: list[DeviceInfo] = []
        for group in groups:
            group_dir = under(root, f"/sys/kernel/iommu_groups/{group.name}/devices")
            members = sorted(group_dir.glob("*"))
            pci = next((m for m in members if read_text(m / "vendor") == GOOGLE_PCI_VENDOR), None)
            if pci is None:
                continue
            chips.append(
                self._chip(
                    index=len(chips),
                    device_id=f"tpu-vfio-{group.name}",
                    device_node=f"/dev/vfio/{group.name}",
                    pci=pci,
                )
            )
        return chips

    def _chip(self, *, index: int, device_id: str, device_node: str, pci: Path) -> DeviceInfo:
        pci_device = read_text(pci / "device") or "unknown"
        return DeviceInfo(
            id=device_id,
            plugin=self.name,
            slot_name="tpu.device",
            model=self.options.model or f"Google TPU (PCI {GOOGLE_PCI_VENDOR}:{pci_device})",
            memory_bytes=self.options.memory_bytes,
            numa_node=read_numa_node(pci / "numa_node"),
            attributes={"index": str(index), "device_node": device_node, "pci_device": pci_device},
        )
