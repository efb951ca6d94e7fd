"""The DevicePlugin protocol and the runtime-neutral data it returns.

A plugin never emits runtime arguments; the runtime adapter turns a `Reservation` into Docker
(or process) settings. Plugins are constructed as `Plugin(name=..., options=..., root=...)`
and selected by entry-point name (`berth.devices`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from agent.contract import DeviceInfo


@dataclass(frozen=True)
class HostMount:
    host_path: str
    container_path: str
    read_only: bool = True


@dataclass(frozen=True)
class VendorDeviceRequest:
    """A request only a vendor runtime hook can satisfy (e.g. Docker's nvidia DeviceRequests)."""

    driver: str
    device_ids: tuple[str, ...]
    capabilities: tuple[str, ...] = ("gpu",)


@dataclass
class Reservation:
    """How to expose a set of devices to one container; merged across plugins by the agent."""

    env: dict[str, str] = field(default_factory=dict)
    device_nodes: list[str] = field(default_factory=list)
    mounts: list[HostMount] = field(default_factory=list)
    vendor_requests: list[VendorDeviceRequest] = field(default_factory=list)

    def merge(self, other: Reservation) -> Reservation:
        env = dict(self.env)
        for key, value in other.env.items():
            # Two plugins of one vendor (e.g. two npu instances) may set the same variable.
            env[key] = f"{env[key]},{value}" if key in env and env[key] != value else value
        return Reservation(
            env=env,
            device_nodes=_unique([*self.device_nodes, *other.device_nodes]),
            mounts=[*self.mounts, *other.mounts],
            vendor_requests=[*self.vendor_requests, *other.vendor_requests],
        )


@dataclass(frozen=True)
class DeviceMetrics:
    device_id: str
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    temperature_c: float | None = None


@runtime_checkable
class DevicePlugin(Protocol):
    """Contract every accelerator plugin implements.

    - `discover()` is cheap enough to call at startup and on demand; it never raises for a
      missing driver or device: it returns an empty list and sets `error` to the reason.
    - `reserve(ids)` is pure (no host side effects), idempotent, and raises `KeyError` for an
      id the plugin did not discover. The allocator, not the plugin, guarantees exclusivity.
    - `metrics(ids)` returns what the hardware reports now; missing values are None.
    """

    name: str
    error: str | None

    def discover(self) -> list[DeviceInfo]: ...

    def reserve(self, device_ids: Sequence[str]) -> Reservation: ...

    def metrics(self, device_ids: Sequence[str]) -> list[DeviceMetrics]: ...


def share_capacity(options: Mapping[str, Any]) -> Decimal | None:
    raw = options.get("shares")
    return None if raw in (None, 0, "0") else Decimal(str(raw))


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
