"""Device-level fit: does a request fit on one node, and on which concrete devices?

The planner copies each snapshot `Node` into a mutable `NodeState` that lives only for one
`schedule()` call. Fitting never mutates; `apply_fit` does, and returns an undo record so a
multi-node session can be rolled back when a later container does not fit (all-or-nothing).

Device rules:

- whole devices (``cuda.device: 2``) take devices that nothing else holds (`whole_free`);
  they come from one NUMA node when any NUMA node has enough, choosing the NUMA node with the
  fewest sufficient free devices (best fit keeps big NUMA groups for big requests); otherwise
  from as few NUMA nodes as possible;
- share slots of one family (``cuda.shares: 0.5, cuda.mem: 8g``) are carved out of a single
  device that has every amount free, preferring devices already shared (best fit by remaining
  shares) so whole devices stay whole for whole-device requests;
- a device given away whole loses all its shares; a device that gives shares stops being whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from manager.scheduler.slots import ZERO, SlotKind, SlotMap, slot_family, slot_kind
from manager.scheduler.snapshot import ExpectedRelease, Node

_NO_NUMA = -1


class RequestError(ValueError):
    """A container request the planner can never satisfy as written (verdict
    ``invalid_request``)."""


@dataclass(frozen=True, slots=True)
class ContainerDemand:
    """One container's request split by slot kind. Built once per session per cycle."""

    slots: SlotMap
    node: dict[str, Decimal]
    whole: dict[str, int]
    shares: dict[str, dict[str, Decimal]]


def analyse_container(slots: SlotMap) -> ContainerDemand:
    """Split a request into node-level amounts, whole-device counts and per-family shares.

    Raises `RequestError` for an empty request, a negative amount or a fractional device count.
    """
    if not slots:
        raise RequestError("a container requests no resources")
    node: dict[str, Decimal] = {}
    whole: dict[str, int] = {}
    shares: dict[str, dict[str, Decimal]] = {}
    for name, amount in slots.items():
        if amount < 0:
            raise RequestError(f"{name}={amount} is negative")
        kind = slot_kind(name)
        if kind is SlotKind.NODE:
            node[name] = amount
        elif kind is SlotKind.DEVICE:
            if amount != amount.to_integral_value():
                raise RequestError(
                    f"{name}={amount} is not a whole number of devices; request "
                    f"{slot_family(name)} share slots for a fraction of a device"
                )
            whole[name] = int(amount)
        else:
            shares.setdefault(slot_family(name), {})[name] = amount
    return ContainerDemand(slots=slots, node=node, whole=whole, shares=shares)


class DeviceSlot:
    """Mutable per-cycle state of one device."""

    __slots__ = (
        "capacity",
        "device_id",
        "family",
        "free",
        "numa",
        "order",
        "reserved",
        "slot",
        "whole_free",
    )

    def __init__(
        self,
        *,
        device_id: str,
        slot: str,
        numa: int,
        order: int,
        whole_free: bool,
        capacity: dict[str, Decimal],
        free: dict[str, Decimal],
    ) -> None:
        self.device_id = device_id
        self.slot = slot
        self.family = slot_family(slot)
        self.numa = numa
        self.order = order
        self.whole_free = whole_free
        self.capacity = capacity
        self.free = free
        # Held for a backfill reservation: invisible to every other session this cycle.
        self.reserved = False

    def copy(self) -> DeviceSlot:
        clone = DeviceSlot(
            device_id=self.device_id,
            slot=self.slot,
            numa=self.numa,
            order=self.order,
            whole_free=self.whole_free,
            capacity=self.capacity,
            free=dict(self.free),
        )
        clone.reserved = self.reserved
        return clone


class NodeState:
    """Mutable per-cycle view of one node: what is still free after the assignments and
    reservations made so far in this cycle."""

    __slots__ = ("blocked", "by_family", "by_id", "free", "index_values", "node", "order")

    def __init__(self, node: Node, *, order: int) -> None:
        self.node = node
        self.order = order
        self.free: dict[str, Decimal] = dict(node.free)
        # Node-level amounts withheld for reservations (already subtracted from `free`).
        self.blocked: dict[str, Decimal] = {}
        self.by_family: dict[str, list[DeviceSlot]] = {}
        self.by_id: dict[str, DeviceSlot] = {}
        for position, device in enumerate(node.devices):
            slot = DeviceSlot(
                device_id=device.device_id,
                slot=device.slot,
                numa=device.numa_node if device.numa_node is not None else _NO_NUMA,
                order=position,
                whole_free=device.whole_free,
                capacity=dict(device.capacity),
                free=dict(device.free),
            )
            self.by_family.setdefault(slot.family, []).append(slot)
            self.by_id[device.device_id] = slot
        # Maintained by CandidateIndex; the values this node is filed under.
        self.index_values: dict[str, Decimal] = {}

    def copy(self) -> NodeState:
        clone = NodeState.__new__(NodeState)
        clone.node = self.node
        clone.order = self.order
        clone.free = dict(self.free)
        clone.blocked = dict(self.blocked)
        clone.by_family = {f: [d.copy() for d in ds] for f, ds in self.by_family.items()}
        clone.by_id = {d.device_id: d for ds in clone.by_family.values() for d in ds}
        clone.index_values = {}
        return clone

    def projected(self, releases: Iterable[ExpectedRelease]) -> NodeState:
        """A copy as it would be once `releases` have ended (reservations still held)."""
        clone = self.copy()
        for release in releases:
            for slot, amount in release.slots.items():
                clone.free[slot] = clone.free.get(slot, ZERO) + amount
            for device_id in release.device_ids:
                device = clone.by_id.get(device_id)
                if device is not None:
                    device.whole_free = True
                    device.free = dict(device.capacity)
            for device_id, amounts in release.device_shares.items():
                device = clone.by_id.get(device_id)
                if device is None:
                    continue
                for slot, amount in amounts.items():
                    device.free[slot] = device.free.get(slot, ZERO) + amount
                if all(device.free.get(s, ZERO) >= c for s, c in device.capacity.items()):
                    device.whole_free = True
        return clone

    def emptied(self) -> NodeState:
        """A copy with every running session gone: full capacity minus reservations."""
        clone = self.copy()
        clone.free = {
            slot: amount - clone.blocked.get(slot, ZERO)
            for slot, amount in self.node.total.items()
            if slot_kind(slot) is SlotKind.NODE
        }
        for devices in clone.by_family.values():
            for device in devices:
                device.whole_free = True
                device.free = dict(device.capacity)
        return clone

    def compute_index_values(self) -> dict[str, Decimal]:
        """The free amount of every slot, as the candidate index files it: node-level slots
        as is, whole-device slots as the count of whole-free devices, share slots as the largest
        amount free on one device."""
        values: dict[str, Decimal] = {
            slot: amount for slot, amount in self.free.items() if slot_kind(slot) is SlotKind.NODE
        }
        for devices in self.by_family.values():
            for device in devices:
                if device.reserved:
                    values.setdefault(device.slot, ZERO)
                    continue
                if device.whole_free:
                    values[device.slot] = values.get(device.slot, ZERO) + 1
                else:
                    values.setdefault(device.slot, ZERO)
                for slot, amount in device.free.items():
                    if amount > values.get(slot, ZERO):
                        values[slot] = amount
                    else:
                        values.setdefault(slot, ZERO)
        return values


@dataclass(slots=True)
class ContainerFit:
    """Where one container's devices come from on its node."""

    whole: dict[str, list[DeviceSlot]] = field(default_factory=dict)
    shares: dict[str, tuple[DeviceSlot, dict[str, Decimal]]] = field(default_factory=dict)
    numa_span: int = 0

    def device_ids(self) -> dict[str, tuple[str, ...]]:
        """Slot name → device ids: every whole slot, and every share slot (one device)."""
        out: dict[str, tuple[str, ...]] = {
            slot: tuple(d.device_id for d in devices) for slot, devices in self.whole.items()
        }
        for device, amounts in self.shares.values():
            for slot in amounts:
                out[slot] = (device.device_id,)
        return out


@dataclass(slots=True)
class NodeFit:
    """A feasible placement of one or more containers on one node."""

    node_slots: dict[str, Decimal]
    containers: list[ContainerFit]

    @property
    def numa_span(self) -> int:
        return max((c.numa_span for c in self.containers), default=0)


@dataclass(slots=True)
class Undo:
    node: NodeState
    node_slots: dict[str, Decimal]
    devices: list[tuple[DeviceSlot, bool, dict[str, Decimal]]]


def fit_node(
    state: NodeState,
    demands: Sequence[ContainerDemand],
    *,
    prefer: frozenset[str] = frozenset(),
) -> NodeFit | None:
    """Fit every container of `demands` on `state` together, or return None.

    `prefer` names device ids to use first when several would do (reservations prefer devices
    that are busy now, so the ones free now stay usable by backfill).
    """
    node_slots: dict[str, Decimal] = {}
    for demand in demands:
        for slot, amount in demand.node.items():
            node_slots[slot] = node_slots.get(slot, ZERO) + amount
    free = state.free
    for slot, amount in node_slots.items():
        if amount > free.get(slot, ZERO):
            return None
    taken: set[int] = set()
    share_used: dict[int, dict[str, Decimal]] = {}
    containers: list[ContainerFit] = []
    for demand in demands:
        fit = _fit_container(state, demand, taken=taken, share_used=share_used, prefer=prefer)
        if fit is None:
            return None
        containers.append(fit)
    return NodeFit(node_slots=node_slots, containers=containers)


def apply_fit(state: NodeState, fit: NodeFit) -> Undo:
    """Take `fit`'s resources from `state`; the returned record puts them back."""
    undo = Undo(node=state, node_slots=fit.node_slots, devices=[])
    for slot, amount in fit.node_slots.items():
        state.free[slot] = state.free.get(slot, ZERO) - amount
    for container in fit.containers:
        for devices in container.whole.values():
            for device in devices:
                undo.devices.append((device, device.whole_free, dict(device.free)))
                device.whole_free = False
                device.free = {slot: ZERO for slot in device.free}
        for device, amounts in container.shares.values():
            undo.devices.append((device, device.whole_free, dict(device.free)))
            device.whole_free = False
            for slot, amount in amounts.items():
                device.free[slot] = device.free.get(slot, ZERO) - amount
    return undo


def revert(undo: Undo) -> None:
    for slot, amount in undo.node_slots.items():
        undo.node.free[slot] = undo.node.free.get(slot, ZERO) + amount
    for device, whole_free, free in reversed(undo.devices):
        device.whole_free = whole_free
        device.free = free


def _fit_container(
    state: NodeState,
    demand: ContainerDemand,
    *,
    taken: set[int],
    share_used: dict[int, dict[str, Decimal]],
    prefer: frozenset[str],
) -> ContainerFit | None:
    fit = ContainerFit()
    numas: set[int] = set()
    for slot, count in demand.whole.items():
        if count == 0:
            continue
        devices = state.by_family.get(slot_family(slot), ())
        free = [
            d
            for d in devices
            if d.slot == slot
            and d.whole_free
            and not d.reserved
            and id(d) not in taken
            and id(d) not in share_used
        ]
        if len(free) < count:
            return None
        chosen = _choose_whole(free, count, prefer)
        for device in chosen:
            taken.add(id(device))
            numas.add(device.numa)
        fit.whole[slot] = chosen
    for family, amounts in demand.shares.items():
        shared = _choose_share_device(
            state.by_family.get(family, ()),
            amounts,
            taken=taken,
            share_used=share_used,
            numas=numas,
            prefer=prefer,
        )
        if shared is None:
            return None
        used = share_used.setdefault(id(shared), {})
        for slot, amount in amounts.items():
            used[slot] = used.get(slot, ZERO) + amount
        numas.add(shared.numa)
        fit.shares[family] = (shared, amounts)
    fit.numa_span = len(numas - {_NO_NUMA}) or (1 if numas else 0)
    return fit


def _choose_whole(free: list[DeviceSlot], count: int, prefer: frozenset[str]) -> list[DeviceSlot]:
    groups: dict[int, list[DeviceSlot]] = {}
    for device in free:
        groups.setdefault(device.numa, []).append(device)
    for members in groups.values():
        members.sort(key=lambda d: (d.device_id not in prefer, d.order))
    enough = [(len(m), numa) for numa, m in groups.items() if len(m) >= count]
    if enough:
        _, numa = min(enough)
        return groups[numa][:count]
    chosen: list[DeviceSlot] = []
    for numa in sorted(groups, key=lambda n: (-len(groups[n]), n)):
        chosen.extend(groups[numa][: count - len(chosen)])
        if len(chosen) == count:
            break
    return chosen


def _choose_share_device(
    devices: Iterable[DeviceSlot],
    amounts: Mapping[str, Decimal],
    *,
    taken: set[int],
    share_used: Mapping[int, Mapping[str, Decimal]],
    numas: set[int],
    prefer: frozenset[str],
) -> DeviceSlot | None:
    best: DeviceSlot | None = None
    best_key: tuple[bool, bool, bool, Decimal, int] | None = None
    first_slot = next(iter(amounts))
    for device in devices:
        if device.reserved or id(device) in taken:
            continue
        used = share_used.get(id(device), {})
        remaining = ZERO
        fits = True
        for slot, amount in amounts.items():
            left = device.free.get(slot, ZERO) - used.get(slot, ZERO) - amount
            if left < 0:
                fits = False
                break
            if slot == first_slot:
                remaining = left
        if not fits:
            continue
        untouched = device.whole_free and id(device) not in share_used
        key = (
            untouched,
            device.device_id not in prefer,
            bool(numas) and device.numa not in numas,
            remaining,
            device.order,
        )
        if best_key is None or key < best_key:
            best, best_key = device, key
    return best


def release_time_key(release: ExpectedRelease) -> tuple[bool, datetime | None]:
    """Sort key: known end times first, earliest first; unknown ends last."""
    return (release.ends_at is None, release.ends_at)
