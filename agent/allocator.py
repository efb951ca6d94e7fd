"""Binds requested slot amounts to concrete devices, CPU/memory capacity and host ports.

Pure bookkeeping (no I/O besides the optional port probe): the agent serialises calls with one
lock and rebuilds the state after a restart with `adopt()` from container labels.

Invariants (checked by a hypothesis state machine in tests/agent/test_allocator.py):
- a whole device has at most one holder and then no share holders;
- the shares held on a device never exceed its share capacity;
- cpu/mem handed out by `allocate()` never exceed capacity minus reservations;
- a host port has at most one holder.
"""

from __future__ import annotations

import socket
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from agent.contract import DeviceHealth, DeviceInfo, SlotMap
from agent.errors import (
    BadRequest,
    DeviceBusy,
    DeviceUnknown,
    InsufficientCapacity,
    PortsExhausted,
    SlotUnknown,
)

CPU = "cpu"
MEM = "mem"
ZERO = Decimal(0)


@dataclass(frozen=True)
class Allocation:
    cpu: Decimal = ZERO
    mem: Decimal = ZERO
    devices: dict[str, dict[str, Decimal]] = field(default_factory=dict)

    def slots(self) -> SlotMap:
        result: SlotMap = {}
        if self.cpu:
            result[CPU] = self.cpu
        if self.mem:
            result[MEM] = self.mem
        for slot, bound in self.devices.items():
            result[slot] = sum(bound.values(), ZERO)
        return result

    def device_ids(self) -> set[str]:
        return {device_id for bound in self.devices.values() for device_id in bound}


class Allocator:
    def __init__(self, *, devices: Sequence[DeviceInfo], cpu: Decimal, mem: Decimal) -> None:
        self._devices = {device.id: device for device in devices}
        if len(self._devices) != len(devices):
            raise ValueError("device ids must be unique across plugins")
        self._cpu_capacity = cpu
        self._mem_capacity = mem
        self._whole: dict[str, str] = {}
        self._shares: dict[str, dict[str, Decimal]] = defaultdict(dict)
        self._held: dict[str, Allocation] = {}
        self._whole_slots = {device.slot_name for device in devices}
        self._share_slots = {d.share_slot_name for d in devices if d.share_slot_name}

    # -- queries ---------------------------------------------------------------------------

    def capacity(self) -> SlotMap:
        result: SlotMap = {CPU: self._cpu_capacity, MEM: self._mem_capacity}
        for device in self._devices.values():
            result[device.slot_name] = result.get(device.slot_name, ZERO) + 1
            if device.share_slot_name and device.share_capacity:
                name = device.share_slot_name
                result[name] = result.get(name, ZERO) + device.share_capacity
        return result

    def free(self) -> SlotMap:
        result: SlotMap = {CPU: self._cpu_capacity - self._used(CPU), MEM: self._mem_capacity}
        result[MEM] -= self._used(MEM)
        for device in self._devices.values():
            whole_free = device.id not in self._whole and not self._shares.get(device.id)
            usable = device.health == DeviceHealth.HEALTHY
            result.setdefault(device.slot_name, ZERO)
            if whole_free and usable:
                result[device.slot_name] += 1
            if device.share_slot_name and device.share_capacity:
                result.setdefault(device.share_slot_name, ZERO)
                if usable:
                    result[device.share_slot_name] += self._share_free(device)
        return result

    def device_free(self) -> dict[str, Decimal]:
        """Per device: shares free if shareable, else 1 (free) or 0 (bound)."""
        result: dict[str, Decimal] = {}
        for device in self._devices.values():
            if device.share_capacity:
                result[device.id] = self._share_free(device)
            else:
                result[device.id] = Decimal(0 if device.id in self._whole else 1)
        return result

    def holders(self) -> dict[str, Allocation]:
        return dict(self._held)

    # -- changes ---------------------------------------------------------------------------

    def allocate(
        self, *, owner: str, slots: Mapping[str, Decimal], explicit: Mapping[str, list[str]] | None
    ) -> Allocation:
        """All-or-nothing: either every slot is bound or nothing changes."""
        if owner in self._held:
            raise BadRequest(f"{owner} already holds an allocation")
        explicit = dict(explicit or {})
        for slot in [*slots, *explicit]:
            if slot not in (CPU, MEM) and slot not in self._whole_slots | self._share_slots:
                raise SlotUnknown(f"this node offers no slot {slot!r}")
        cpu = Decimal(slots.get(CPU, ZERO))
        mem = Decimal(slots.get(MEM, ZERO))
        free = self.free()
        if cpu > free[CPU] or mem > free[MEM]:
            raise InsufficientCapacity(
                f"requested cpu={cpu} mem={mem}, free cpu={free[CPU]} mem={free[MEM]}"
            )
        taken: set[str] = set()
        devices: dict[str, dict[str, Decimal]] = {}
        for slot in sorted(self._whole_slots & (set(slots) | set(explicit))):
            ids = self._pick_whole(slot, amount=slots.get(slot), explicit=explicit.get(slot))
            if ids:
                devices[slot] = {device_id: Decimal(1) for device_id in ids}
                taken.update(ids)
        for slot in sorted(self._share_slots & (set(slots) | set(explicit))):
            amount = Decimal(slots.get(slot, ZERO))
            bound = self._pick_shares(
                slot, amount=amount, explicit=explicit.get(slot), taken=taken
            )
            if bound:
                devices[slot] = bound
        allocation = Allocation(cpu=cpu, mem=mem, devices=devices)
        self._commit(owner, allocation)
        return allocation

    def adopt(self, *, owner: str, allocation: Allocation) -> None:
        """Re-bind an allocation recorded on a running container (recovery after restart).

        CPU and memory are adopted even past capacity (the container exists whatever the
        config says now); devices must exist and be free, else DeviceUnknown/DeviceBusy.
        """
        if owner in self._held:
            raise BadRequest(f"{owner} already holds an allocation")
        for slot, bound in allocation.devices.items():
            for device_id, amount in bound.items():
                device = self._devices.get(device_id)
                if device is None:
                    raise DeviceUnknown(f"device {device_id} is no longer present")
                if slot == device.slot_name:
                    if device_id in self._whole or self._shares.get(device_id):
                        raise DeviceBusy(f"device {device_id} is already bound")
                elif slot == device.share_slot_name:
                    if device_id in self._whole or amount > self._share_free(device):
                        raise DeviceBusy(f"device {device_id} has fewer than {amount} shares free")
                else:
                    raise DeviceUnknown(f"device {device_id} offers no slot {slot!r}")
        self._commit(owner, allocation)

    def release(self, owner: str) -> Allocation | None:
        """Idempotent: releasing an unknown owner returns None."""
        allocation = self._held.pop(owner, None)
        if allocation is None:
            return None
        for device_id in allocation.device_ids():
            if self._whole.get(device_id) == owner:
                del self._whole[device_id]
            shares = self._shares.get(device_id)
            if shares is not None:
                shares.pop(owner, None)
                if not shares:
                    del self._shares[device_id]
        return allocation

    # -- helpers ---------------------------------------------------------------------------

    def _commit(self, owner: str, allocation: Allocation) -> None:
        for slot, bound in allocation.devices.items():
            for device_id, amount in bound.items():
                if self._devices[device_id].slot_name == slot:
                    self._whole[device_id] = owner
                else:
                    self._shares[device_id][owner] = amount
        self._held[owner] = allocation

    def _used(self, kind: str) -> Decimal:
        attr = "cpu" if kind == CPU else "mem"
        return sum((getattr(a, attr) for a in self._held.values()), ZERO)

    def _share_free(self, device: DeviceInfo) -> Decimal:
        if device.id in self._whole or not device.share_capacity:
            return ZERO
        return device.share_capacity - sum(self._shares.get(device.id, {}).values(), ZERO)

    def _lookup(self, device_id: str, *, slot: str) -> DeviceInfo:
        device = self._devices.get(device_id)
        if device is None:
            raise DeviceUnknown(f"device {device_id!r} does not exist on this node")
        if slot not in (device.slot_name, device.share_slot_name):
            raise DeviceUnknown(f"device {device_id!r} offers no slot {slot!r}")
        return device

    def _pick_whole(
        self, slot: str, *, amount: Decimal | None, explicit: list[str] | None
    ) -> list[str]:
        if amount is not None and amount != amount.to_integral_value():
            raise BadRequest(f"slot {slot!r} counts whole devices; got {amount}")
        if explicit is not None:
            if amount is not None and int(amount) != len(explicit):
                raise BadRequest(
                    f"{slot!r}: requested {amount} but listed {len(explicit)} devices"
                )
            if len(set(explicit)) != len(explicit):
                raise BadRequest(f"{slot!r}: a device is listed twice")
            for device_id in explicit:
                device = self._lookup(device_id, slot=slot)
                if device.health != DeviceHealth.HEALTHY:
                    raise DeviceBusy(f"device {device_id} is unhealthy")
                if device_id in self._whole or self._shares.get(device_id):
                    raise DeviceBusy(f"device {device_id} is already bound to another container")
            return list(explicit)
        count = int(amount or 0)
        if count == 0:
            return []
        candidates = [
            d
            for d in self._devices.values()
            if d.slot_name == slot
            and d.health == DeviceHealth.HEALTHY
            and d.id not in self._whole
            and not self._shares.get(d.id)
        ]
        if len(candidates) < count:
            raise InsufficientCapacity(
                f"{slot!r}: requested {count}, {len(candidates)} free on this node"
            )
        return _prefer_one_numa_node(candidates, count)

    def _pick_shares(
        self, slot: str, *, amount: Decimal, explicit: list[str] | None, taken: set[str]
    ) -> dict[str, Decimal]:
        if amount <= 0:
            if explicit:
                raise BadRequest(f"{slot!r}: devices listed but no amount requested")
            return {}
        if explicit is not None:
            pool = [self._lookup(device_id, slot=slot) for device_id in explicit]
        else:
            pool = [d for d in self._devices.values() if d.share_slot_name == slot]
        candidates = [
            (self._share_free(d), d)
            for d in pool
            if d.health == DeviceHealth.HEALTHY and d.id not in taken and self._share_free(d) > 0
        ]
        fitting = [(free, d) for free, d in candidates if free >= amount]
        if fitting:
            # Best fit keeps large free blocks for later large requests.
            _, device = min(fitting, key=lambda item: (item[0], item[1].id))
            return {device.id: amount}
        total = sum((free for free, _ in candidates), ZERO)
        if total < amount:
            error = DeviceBusy if explicit is not None else InsufficientCapacity
            raise error(f"{slot!r}: requested {amount}, {total} free")
        bound: dict[str, Decimal] = {}
        remaining = amount
        for free, device in sorted(candidates, key=lambda item: (-item[0], item[1].id)):
            part = min(free, remaining)
            bound[device.id] = part
            remaining -= part
            if remaining == 0:
                break
        return bound


def _prefer_one_numa_node(candidates: list[DeviceInfo], count: int) -> list[str]:
    groups: dict[int, list[DeviceInfo]] = defaultdict(list)
    for device in sorted(candidates, key=lambda d: d.id):
        groups[device.numa_node if device.numa_node is not None else -1].append(device)
    fitting = [(len(members), node) for node, members in groups.items() if len(members) >= count]
    if fitting:
        _, node = min(fitting)
        return [d.id for d in groups[node][:count]]
    chosen: list[str] = []
    for _, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        chosen.extend(d.id for d in members[: count - len(chosen)])
        if len(chosen) == count:
            break
    return chosen


class PortAllocator:
    """Host ports from an inclusive range, handed out round-robin so a just-freed port rests."""

    def __init__(self, *, low: int, high: int, host_ip: str, probe: bool = True) -> None:
        self._low, self._high = low, high
        self._host_ip = host_ip
        self._probe = probe
        self._owner_of: dict[int, str] = {}
        self._next = low

    def allocate(self, *, owner: str, count: int) -> list[int]:
        chosen: list[int] = []
        size = self._high - self._low + 1
        for step in range(size):
            if len(chosen) == count:
                break
            port = self._low + (self._next - self._low + step) % size
            if port in self._owner_of or (self._probe and not _port_is_free(self._host_ip, port)):
                continue
            chosen.append(port)
        if len(chosen) < count:
            raise PortsExhausted(f"only {len(chosen)} of {count} host ports free in the range")
        self._next = self._low + (chosen[-1] - self._low + 1) % size if chosen else self._next
        for port in chosen:
            self._owner_of[port] = owner
        return chosen

    def adopt(self, *, owner: str, ports: Iterable[int]) -> None:
        ports = list(ports)
        clash = [p for p in ports if self._owner_of.get(p, owner) != owner]
        if clash:
            raise DeviceBusy(f"host ports {clash} are already bound")
        for port in ports:
            self._owner_of[port] = owner

    def release(self, owner: str) -> list[int]:
        mine = [port for port, holder in self._owner_of.items() if holder == owner]
        for port in mine:
            del self._owner_of[port]
        return mine

    def held(self) -> dict[int, str]:
        return dict(self._owner_of)


def _port_is_free(host_ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip, port))
        except OSError:
            return False
    return True
