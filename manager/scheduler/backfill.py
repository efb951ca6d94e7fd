"""Backfill reservations.

Backfill lets sessions behind a head that does not fit run now. To keep a large session from
starving behind an endless stream of small ones, a session that has waited at least its group's
`backfill_wait_threshold_s` and still does not fit gets a *reservation*:

1. For every compatible node, walk the node's expected releases in time order (known end times
   first, then "everything running has ended") and find the earliest moment the session would fit
   there. The node (or, for a multi-node session, one node per container) with the earliest
   moment wins; ties go to the node that is closest to fitting now, then to node order.
2. The reservation holds, from now on and for the rest of the cycle:
   - the concrete devices the session would use at that moment (busy devices are chosen before
     free ones, so free devices stay available when possible); a reserved device is withheld
     entirely, shares included;
   - of each node-level slot (cpu, mem), the part of today's free amount that the session will
     need at that moment: a smaller session may use only the *headroom*, i.e.
     ``free_then - requested``, so running it cannot delay the reservation even if it outlives
     the releases.
3. A later session that fits only by using held resources gets the verdict
   ``blocked_by_reservation``; the holder gets ``waiting_for_reservation``.

Reservations are recomputed from the snapshot every cycle; the choice is deterministic, so a
reservation stays on the same node while nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import groupby

from manager.scheduler.fit import (
    ContainerDemand,
    NodeFit,
    NodeState,
    fit_node,
    release_time_key,
)
from manager.scheduler.placement import CANDIDATE_FILTERS, CandidateIndex
from manager.scheduler.slots import INFINITY, ZERO, SlotMap, sum_slot_maps
from manager.scheduler.snapshot import PendingSession


@dataclass(frozen=True, slots=True)
class ReservedNode:
    """What one reservation holds on one node.

    `slots` is the request that will run there; `device_ids` maps each device slot the request
    uses to the device ids held for it; `held` is the node-level amount withheld from other
    sessions now (may be less than `slots` when releases will free the rest);
    `expected_at` is when the releases it waits for are due (None: when running sessions
    without a known end finish).
    """

    node_id: str
    container_indexes: tuple[int, ...]
    slots: SlotMap
    device_ids: Mapping[str, tuple[str, ...]]
    held: SlotMap
    expected_at: datetime | None


@dataclass(frozen=True, slots=True)
class Reservation:
    session_id: str
    resource_group: str
    nodes: tuple[ReservedNode, ...]
    waited_s: float

    @property
    def expected_at(self) -> datetime | None:
        """When every reserved node is expected to fit (None when any end is unknown)."""
        times = [n.expected_at for n in self.nodes]
        if any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)


@dataclass(slots=True)
class _Hold:
    state: NodeState
    blocked: dict[str, Decimal]
    devices: list[str]


@dataclass(slots=True)
class ActiveReservation:
    """A reservation plus the holds it put on the cycle's node states (so the planner can lift
    them to ask "would this session fit if nothing were reserved?")."""

    reservation: Reservation
    holds: list[_Hold] = field(default_factory=list)

    def lift(self, index: CandidateIndex) -> None:
        for hold in self.holds:
            _set_hold(hold, index, active=False)

    def restore(self, index: CandidateIndex) -> None:
        for hold in self.holds:
            _set_hold(hold, index, active=True)


def reserve(
    index: CandidateIndex,
    session: PendingSession,
    demands: Sequence[ContainerDemand],
    *,
    waited_s: float,
) -> ActiveReservation | None:
    """Find and take a reservation for `session`, or None when no node could ever fit it."""
    groups: list[tuple[tuple[int, ...], list[ContainerDemand]]]
    if session.multi_node:
        ordered = sorted(range(len(demands)), key=lambda i: _size_key(demands[i]))
        groups = [((i,), [demands[i]]) for i in ordered]
    else:
        groups = [(tuple(range(len(demands))), list(demands))]
    active = ActiveReservation(
        reservation=Reservation(session.session_id, session.resource_group, (), waited_s)
    )
    nodes: list[ReservedNode] = []
    for container_indexes, group in groups:
        choice = _earliest_node(index, session, group)
        if choice is None:
            # All-or-nothing: give back what earlier containers of this session took.
            active.lift(index)
            return None
        state, projected, fit, expected_at = choice
        hold = _take(index, state, projected, fit)
        active.holds.append(hold)
        nodes.append(
            ReservedNode(
                node_id=state.node.node_id,
                container_indexes=container_indexes,
                slots=sum_slot_maps(d.slots for d in group),
                device_ids=_device_ids(fit),
                held=SlotMap({k: v for k, v in hold.blocked.items() if v}),
                expected_at=expected_at,
            )
        )
    active.reservation = Reservation(
        session.session_id, session.resource_group, tuple(nodes), waited_s
    )
    return active


def _size_key(demand: ContainerDemand) -> tuple[int, Decimal]:
    return (-sum(demand.whole.values()), -demand.node.get("cpu", ZERO))


def _earliest_node(
    index: CandidateIndex, session: PendingSession, demands: list[ContainerDemand]
) -> tuple[NodeState, NodeState, NodeFit, datetime | None] | None:
    best_found: (
        tuple[tuple[bool, datetime | None, Decimal, int], NodeState, NodeState, NodeFit] | None
    ) = None
    for order in sorted(index.states):
        state = index.states[order]
        if any(f.reject(state.node, session) for f in CANDIDATE_FILTERS):
            continue
        found = _earliest_fit(state, demands)
        if found is None:
            continue
        projected, fit, expected_at = found
        key = (expected_at is None, expected_at, _shortfall(state, demands), order)
        if best_found is None or _key_less(key, best_found[0]):
            best_found = (key, state, projected, fit)
    if best_found is None:
        return None
    key, state, projected, fit = best_found
    return state, projected, fit, key[1]


def _key_less(
    a: tuple[bool, datetime | None, Decimal, int], b: tuple[bool, datetime | None, Decimal, int]
) -> bool:
    # Tuples holding None cannot be compared with <; compare field by field instead.
    if a[0] != b[0]:
        return b[0]
    if a[1] is not None and b[1] is not None and a[1] != b[1]:
        return a[1] < b[1]
    return (a[2], a[3]) < (b[2], b[3])


def _earliest_fit(
    state: NodeState, demands: list[ContainerDemand]
) -> tuple[NodeState, NodeFit, datetime | None] | None:
    busy = frozenset(
        d.device_id
        for devices in state.by_family.values()
        for d in devices
        if not d.whole_free and not d.reserved
    )
    known = sorted((r for r in state.node.releases if r.ends_at is not None), key=release_time_key)
    done = 0
    for ends_at, batch in groupby(known, key=lambda r: r.ends_at):
        done += len(list(batch))
        projected = state.projected(known[:done])
        fit = fit_node(projected, demands, prefer=busy)
        if fit is not None:
            return projected, fit, ends_at
    projected = state.emptied()
    fit = fit_node(projected, demands, prefer=busy)
    if fit is None:
        return None
    return projected, fit, None


def _shortfall(state: NodeState, demands: list[ContainerDemand]) -> Decimal:
    missing: dict[str, Decimal] = {}
    for demand in demands:
        for slot, amount in demand.node.items():
            missing[slot] = missing.get(slot, ZERO) + amount
        for slot, count in demand.whole.items():
            missing[slot] = missing.get(slot, ZERO) + count
    short = SlotMap(
        {k: v - state.index_values.get(k, ZERO) for k, v in missing.items()}
    ).clamp_negative()
    share = short.dominant_share(state.node.total)
    return share if share != INFINITY else Decimal(10**9)


def _take(index: CandidateIndex, state: NodeState, projected: NodeState, fit: NodeFit) -> _Hold:
    blocked: dict[str, Decimal] = {}
    for slot, amount in fit.node_slots.items():
        headroom = projected.free.get(slot, ZERO) - amount
        current = state.free.get(slot, ZERO)
        if current > headroom:
            blocked[slot] = current - max(headroom, ZERO)
    devices = [
        device.device_id
        for container in fit.containers
        for device in [d for ds in container.whole.values() for d in ds]
        + [d for d, _ in container.shares.values()]
    ]
    hold = _Hold(state=state, blocked=blocked, devices=devices)
    _set_hold(hold, index, active=True)
    return hold


def _set_hold(hold: _Hold, index: CandidateIndex, *, active: bool) -> None:
    state = hold.state
    sign = 1 if active else -1
    for slot, amount in hold.blocked.items():
        state.free[slot] = state.free.get(slot, ZERO) - sign * amount
        state.blocked[slot] = state.blocked.get(slot, ZERO) + sign * amount
    for device_id in hold.devices:
        state.by_id[device_id].reserved = active
    index.update(state)


def _device_ids(fit: NodeFit) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for container in fit.containers:
        for slot, ids in container.device_ids().items():
            out.setdefault(slot, []).extend(ids)
    return {slot: tuple(ids) for slot, ids in out.items()}
