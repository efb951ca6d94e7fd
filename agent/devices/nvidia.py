"""NVIDIA GPUs through NVML (nvidia-ml-py).

Without a driver `discover()` returns no devices and sets `error` to
"no NVIDIA devices: <NVML error>"; it never raises. Whole GPUs use the slot `cuda.device`;
MIG instances (when MIG mode is on) use `cuda.mig` and replace their parent GPU. Visibility is
given by UUID in CUDA_VISIBLE_DEVICES/NVIDIA_VISIBLE_DEVICES, which is correct both for a bare
process and inside a container, plus a vendor request the Docker runtime maps to DeviceRequests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import pynvml
from pydantic import BaseModel, ConfigDict, Field

from agent.contract import DeviceInfo
from agent.devices.base import DeviceMetrics, Reservation, VendorDeviceRequest

T = TypeVar("T")


class NvidiaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shares: Decimal | None = Field(
        default=None,
        gt=0,
        description="Offer 'cuda.shares' per GPU for time-sliced sharing (not memory-isolated).",
    )
    include_mig: bool = True


class NvidiaDevicePlugin:
    def __init__(self, *, name: str = "nvidia", options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.error: str | None = None
        self.options = NvidiaOptions.model_validate(dict(options or {}))
        self._handles_by_id: dict[str, str] = {}

    def discover(self) -> list[DeviceInfo]:
        try:
            with _nvml():
                devices = self._discover()
        except pynvml.NVMLError as exc:
            self.error = f"no NVIDIA devices: {exc}"
            return []
        self.error = None if devices else "no NVIDIA devices: NVML reports 0 GPUs"
        return devices

    def reserve(self, device_ids: Sequence[str]) -> Reservation:
        unknown = [device_id for device_id in device_ids if device_id not in self._handles_by_id]
        if unknown:
            raise KeyError(f"unknown NVIDIA devices: {unknown}")
        uuids = ",".join(device_ids)
        return Reservation(
            env={"CUDA_VISIBLE_DEVICES": uuids, "NVIDIA_VISIBLE_DEVICES": uuids},
            vendor_requests=[
                VendorDeviceRequest(
                    driver="nvidia", device_ids=tuple(device_ids), capabilities=("gpu",)
                )
            ],
        )

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]:
        result: list[DeviceMetrics] = []
        try:
            with _nvml():
                for device_id in device_ids:
                    handle = pynvml.nvmlDeviceGetHandleByUUID(device_id)
                    util = _optional(_utilization, handle)
                    mem = _optional(_memory_used, handle)
                    temp = _optional(
                        pynvml.nvmlDeviceGetTemperature, handle, pynvml.NVML_TEMPERATURE_GPU
                    )
                    result.append(
                        DeviceMetrics(
                            device_id=device_id,
                            utilization_pct=None if util is None else float(util),
                            memory_used_bytes=None if mem is None else int(mem),
                            temperature_c=None if temp is None else float(temp),
                        )
                    )
        except pynvml.NVMLError as exc:
            self.error = f"NVIDIA metrics unavailable: {exc}"
        return result

    def _discover(self) -> list[DeviceInfo]:
        devices: list[DeviceInfo] = []
        self._handles_by_id = {}
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            migs = self._mig_devices(handle, index) if self.options.include_mig else []
            if migs:
                devices.extend(migs)
                continue
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            pci = _optional(_pci_bus_id, handle)
            devices.append(
                DeviceInfo(
                    id=uuid,
                    plugin=self.name,
                    slot_name="cuda.device",
                    model=_text(pynvml.nvmlDeviceGetName(handle)),
                    memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    numa_node=_numa_node(handle),
                    share_slot_name="cuda.shares" if self.options.shares else None,
                    share_capacity=self.options.shares,
                    attributes={"index": str(index), "uuid": uuid, "pci_bus_id": pci or ""},
                )
            )
            self._handles_by_id[uuid] = uuid
        return devices

    def _mig_devices(self, handle: Any, index: int) -> list[DeviceInfo]:
        modes = _optional(pynvml.nvmlDeviceGetMigMode, handle)
        current = modes[0] if modes else None
        if current != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        parent_uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        result: list[DeviceInfo] = []
        for mig_index in range(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            mig = _optional(pynvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, mig_index)
            if mig is None:
                continue
            uuid = _text(pynvml.nvmlDeviceGetUUID(mig))
            result.append(
                DeviceInfo(
                    id=uuid,
                    plugin=self.name,
                    slot_name="cuda.mig",
                    model=_text(pynvml.nvmlDeviceGetName(mig)),
                    memory_bytes=int(pynvml.nvmlDeviceGetMemoryInfo(mig).total),
                    numa_node=_numa_node(handle),
                    attributes={
                        "index": f"{index}:{mig_index}",
                        "uuid": uuid,
                        "parent_uuid": parent_uuid,
                    },
                )
            )
            self._handles_by_id[uuid] = uuid
        return result


@contextmanager
def _nvml() -> Iterator[None]:
    pynvml.nvmlInit()
    try:
        yield
    finally:
        pynvml.nvmlShutdown()


def _optional(read: Callable[..., T], *args: Any) -> T | None:
    """NVML calls a GPU model or driver does not support raise; treat those values as unknown."""
    try:
        return read(*args)
    except (pynvml.NVMLError, AttributeError):
        return None


def _numa_node(handle: Any) -> int | None:
    getter = getattr(pynvml, "nvmlDeviceGetNumaNodeId", None)
    if getter is None:
        return None
    node = _optional(getter, handle)
    return node if isinstance(node, int) and node >= 0 else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _utilization(handle: Any) -> int:
    return int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)


def _memory_used(handle: Any) -> int:
    return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)


def _pci_bus_id(handle: Any) -> str:
    return _text(pynvml.nvmlDeviceGetPciInfo(handle).busId)
