"""`schedule(snapshot, now=...) -> Plan`: one pure scheduling cycle.

The plan says where each placed session goes (down to device ids), why every other pending
session waits, and which resources are held for long-waiting sessions. The caller commits the
assignments optimistically, re-checking each against fresh rows; the planner itself does no I/O.

The cycle, per resource group (groups in name order; quota usage is shared between them):

1. order    — bucket sessions by resource group, refuse unknown or forbidden groups, and order
              each queue with the group's policy (fifo | priority | drf);
2. filter   — per session: a valid request, a compatible node (architecture, image, cordon),
              a request no larger than the largest node, quota headroom at every scope;
3. fit      — walk the free-capacity index from the best-fitting end; device-level fit on each
              candidate (whole devices, shares within one device, one NUMA node if possible);
4. score    — rank the first few feasible nodes (bin-pack or spread, plus NUMA locality);
5. assign   — take the resources in the cycle's state and charge quota usage, so later sessions
              see them as used; multi-container sessions are placed all-or-nothing;
6. reserve  — a session that did not fit and has waited past the group's threshold gets a
              backfill reservation (see backfill.py); later sessions may not use it;
7. verdicts — every session not placed gets a stable code, a message, and its queue position.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from manager.scheduler.backfill import ActiveReservation, Reservation, reserve
from manager.scheduler.fit import (
    ContainerDemand,
    NodeFit,
    NodeState,
    RequestError,
    Undo,
    analyse_container,
    apply_fit,
    revert,
)
from manager.scheduler.ordering import OrderingContext, ordering_for
from manager.scheduler.placement import (
    ALL_FILTERS,
    DEFAULT_MAX_SCORED,
    CandidateIndex,
    WeightedScorer,
    find_node,
    requirements,
    scorer_for,
)
from manager.scheduler.quota import QuotaTracker, QuotaViolation
from manager.scheduler.slots import EMPTY, ZERO, SlotKind, SlotMap, slot_kind, sum_slot_maps
from manager.scheduler.snapshot import (
    DrfUsage,
    Node,
    PendingSession,
    PlacementKind,
    ResourceGroup,
    Snapshot,
)
from manager.scheduler.verdicts import (
    Verdict,
    VerdictCode,
    no_fit_message,
    reservation_message,
)


@dataclass(frozen=True, slots=True)
class ContainerAssignment:
    """Where one container goes: its node, its request, and the device ids bound per device or
    share slot (a share slot always maps to exactly one device)."""

    container_index: int
    node_id: str
    slots: SlotMap
    device_ids: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Assignment:
    session_id: str
    resource_group: str
    containers: tuple[ContainerAssignment, ...]

    @property
    def node_ids(self) -> tuple[str, ...]:
        """Distinct nodes used, in container order."""
        return tuple(dict.fromkeys(c.node_id for c in self.containers))

    def slots_on(self, node_id: str) -> SlotMap:
        """Everything this assignment takes on `node_id` (what the guarded commit re-checks)."""
        return sum_slot_maps(c.slots for c in self.containers if c.node_id == node_id)


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of one cycle. Mappings are keyed by session id and iterate in decision order
    (commit assignments in that order). `timings_s` holds seconds spent per phase."""

    assignments: Mapping[str, Assignment]
    verdicts: Mapping[str, Verdict]
    reservations: Mapping[str, Reservation]
    timings_s: Mapping[str, float] = field(default_factory=dict, compare=False)


def schedule(snapshot: Snapshot, *, now: datetime, max_scored: int = DEFAULT_MAX_SCORED) -> Plan:
    """Plan one scheduling cycle over `snapshot`. Pure and deterministic (except timings)."""
    cycle = _Cycle(snapshot, now=now, max_scored=max_scored)
    return cycle.run()


class _PhaseClock:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        current = time.perf_counter()
        self.totals[phase] = self.totals.get(phase, 0.0) + current - self._last
        self._last = current


@dataclass(slots=True)
class _Draft:
    session: PendingSession
    code: VerdictCode
    message: str
    quota: tuple[QuotaViolation, ...] = ()
    requested: SlotMap = EMPTY
    largest_free: SlotMap = EMPTY
    reserved_for: tuple[str, ...] = ()
    reservation: Reservation | None = None


class _Cycle:
    def __init__(self, snapshot: Snapshot, *, now: datetime, max_scored: int) -> None:
        self.snapshot = snapshot
        self.now = now
        self.max_scored = max_scored
        self.clock = _PhaseClock()
        self.quota = QuotaTracker(limits=snapshot.quotas, usage=snapshot.usage)
        self.assignments: dict[str, Assignment] = {}
        self.drafts: dict[str, _Draft] = {}
        self.reservations: dict[str, Reservation] = {}
        self.nodes_by_group: dict[str, list[Node]] = {}
        states: dict[tuple[str, str], list[NodeState]] = {}
        for order, node in enumerate(snapshot.nodes):
            self.nodes_by_group.setdefault(node.resource_group, []).append(node)
            if node.schedulable:
                key = (node.resource_group, node.architecture)
                states.setdefault(key, []).append(NodeState(node, order=order))
        self.indexes = {key: CandidateIndex(group) for key, group in states.items()}
        self._incompatible: dict[tuple[str, str, str], str] = {}
        self._demand_cache: dict[SlotMap, ContainerDemand | RequestError] = {}
        self._needs_cache: dict[tuple[tuple[SlotMap, ...], bool], list[dict[str, Decimal]]] = {}

    def run(self) -> Plan:
        # Phase 1 (order): bucket by resource group; unknown or forbidden groups end here.
        queues: dict[str, list[PendingSession]] = {}
        for session in self.snapshot.pending:
            group = self.snapshot.resource_groups.get(session.resource_group)
            if group is None:
                self._verdict(
                    session,
                    VerdictCode.RESOURCE_GROUP_DENIED,
                    f"resource group {session.resource_group!r} does not exist",
                )
            elif group.allowed_projects is not None and (
                session.project_id not in group.allowed_projects
            ):
                self._verdict(
                    session,
                    VerdictCode.RESOURCE_GROUP_DENIED,
                    f"project {session.project_id!r} may not use resource group {group.name!r}",
                )
            else:
                queues.setdefault(group.name, []).append(session)
        ordered_queues: dict[str, list[PendingSession]] = {}
        for name in sorted(queues):
            group = self.snapshot.resource_groups[name]
            context = OrderingContext(
                capacity=sum_slot_maps(
                    n.total for n in self.nodes_by_group.get(name, ()) if n.schedulable
                ),
                usage=self.snapshot.drf_usage.get(name, DrfUsage()),
            )
            ordered_queues[name] = ordering_for(group.ordering).order(
                queues[name], context=context
            )
        self.clock.lap("order")
        for name, queue in ordered_queues.items():
            self._run_group(self.snapshot.resource_groups[name], queue)
        # Phase 7 (verdicts): queue positions among what is still pending, in policy order.
        verdicts: dict[str, Verdict] = {}
        for queue in ordered_queues.values():
            position = 0
            for session in queue:
                draft = self.drafts.get(session.session_id)
                if draft is not None:
                    position += 1
                    verdicts[session.session_id] = _finish(draft, position)
        for session_id, draft in self.drafts.items():
            if session_id not in verdicts:
                verdicts[session_id] = _finish(draft, None)
        self.clock.lap("verdicts")
        return Plan(
            assignments=self.assignments,
            verdicts=verdicts,
            reservations=self.reservations,
            timings_s=dict(self.clock.totals),
        )

    def _run_group(self, group: ResourceGroup, queue: Sequence[PendingSession]) -> None:
        scorer = scorer_for(group.placement)
        descending = group.placement is PlacementKind.SPREAD
        active: dict[tuple[str, str], list[ActiveReservation]] = {}
        for session in queue:
            # Phase 2 (filter): request, compatibility, size, quota.
            demands = self._admit(session)
            self.clock.lap("filter")
            if demands is None:
                continue
            index = self.indexes[(group.name, session.architecture)]
            # Phases 3-5 (fit, score, assign).
            placed = self._place(index, session, demands, scorer=scorer, descending=descending)
            self.clock.lap("fit_score_assign")
            if placed is not None:
                self._record(session, placed[0])
                continue
            # Phase 6 (reserve): blocked by a reservation, entitled to one, or just full.
            self._explain_unplaced(
                group,
                index,
                session,
                demands,
                holders=active.setdefault((group.name, session.architecture), []),
                active_count=sum(len(v) for v in active.values()),
                scorer=scorer,
                descending=descending,
            )
            self.clock.lap("reserve")

    def _admit(self, session: PendingSession) -> list[ContainerDemand] | None:
        if not session.containers:
            self._verdict(session, VerdictCode.INVALID_REQUEST, "the session has no containers")
            return None
        demands: list[ContainerDemand] = []
        for position, slots in enumerate(session.containers):
            demand = self._demand(slots)
            if isinstance(demand, RequestError):
                self._verdict(
                    session, VerdictCode.INVALID_REQUEST, f"container {position}: {demand}"
                )
                return None
            demands.append(demand)
        index = self.indexes.get((session.resource_group, session.architecture))
        if index is None or not index.accepts_image(session.image):
            self._verdict(session, VerdictCode.NO_COMPATIBLE_NODE, self._why_incompatible(session))
            return None
        for needs in self._needs(session, demands):
            largest_total = index.largest_total
            if all(amount <= largest_total.get(slot, ZERO) for slot, amount in needs.items()):
                continue
            too_big = SlotMap(
                {
                    slot: amount
                    for slot, amount in needs.items()
                    if amount > largest_total.get(slot, ZERO)
                }
            )
            if too_big:
                largest = SlotMap({s: index.largest_total.get(s, ZERO) for s in too_big})
                where = "one device" if _shares_only(too_big) else "the largest node"
                self._verdict(
                    session,
                    VerdictCode.REQUEST_TOO_LARGE,
                    f"requests {too_big.format()} but {where} in resource group "
                    f"{session.resource_group!r} has {largest.format() or 'none of it'}",
                    requested=too_big,
                    largest_free=largest,
                )
                return None
        violations = self.quota.violations(session)
        if violations:
            self._verdict(
                session,
                VerdictCode.QUOTA_EXCEEDED,
                "quota exceeded: " + "; ".join(v.describe() for v in violations),
                quota=tuple(violations),
            )
            return None
        return demands

    def _demand(self, slots: SlotMap) -> ContainerDemand | RequestError:
        # Requests repeat a lot (presets); analyse each distinct one once per cycle.
        cached = self._demand_cache.get(slots)
        if cached is None:
            try:
                cached = analyse_container(slots)
            except RequestError as exc:
                cached = exc
            self._demand_cache[slots] = cached
        return cached

    def _needs(
        self, session: PendingSession, demands: list[ContainerDemand]
    ) -> list[dict[str, Decimal]]:
        """Per placement unit (the whole session, or each container when multi-node), what one
        node must have free."""
        key = (session.containers, session.multi_node)
        cached = self._needs_cache.get(key)
        if cached is None:
            groups = [[d] for d in demands] if session.multi_node else [demands]
            cached = [requirements(group) for group in groups]
            self._needs_cache[key] = cached
        return cached

    def _place(
        self,
        index: CandidateIndex,
        session: PendingSession,
        demands: list[ContainerDemand],
        *,
        scorer: WeightedScorer,
        descending: bool,
    ) -> tuple[list[tuple[int, NodeState, NodeFit]], list[Undo]] | None:
        """Find and take resources for every container, or take nothing. Returns where each
        container (group) went and the undo records of what was taken."""
        needs = self._needs(session, demands)
        if not session.multi_node:
            found = find_node(
                index,
                session,
                demands,
                scorer=scorer,
                descending=descending,
                max_scored=self.max_scored,
                needs=needs[0],
            )
            if found is None:
                return None
            state, fit = found
            undo = apply_fit(state, fit)
            index.update(state)
            return [(0, state, fit)], [undo]
        # Largest containers first: they have the fewest candidate nodes.
        order = sorted(range(len(demands)), key=lambda i: _size_key(demands[i]))
        undos: list[Undo] = []
        placed: list[tuple[int, NodeState, NodeFit]] = []
        for position in order:
            found = find_node(
                index,
                session,
                [demands[position]],
                scorer=scorer,
                descending=descending,
                max_scored=self.max_scored,
                needs=needs[position],
            )
            if found is None:
                _rollback(index, undos)
                return None
            state, fit = found
            undos.append(apply_fit(state, fit))
            index.update(state)
            placed.append((position, state, fit))
        return placed, undos

    def _record(
        self, session: PendingSession, placed: list[tuple[int, NodeState, NodeFit]]
    ) -> None:
        containers: list[ContainerAssignment] = []
        for first, state, fit in placed:
            for offset, container_fit in enumerate(fit.containers):
                position = first + offset
                containers.append(
                    ContainerAssignment(
                        container_index=position,
                        node_id=state.node.node_id,
                        slots=session.containers[position],
                        device_ids=container_fit.device_ids(),
                    )
                )
        containers.sort(key=lambda c: c.container_index)
        self.assignments[session.session_id] = Assignment(
            session_id=session.session_id,
            resource_group=session.resource_group,
            containers=tuple(containers),
        )
        self.quota.charge(session)

    def _explain_unplaced(
        self,
        group: ResourceGroup,
        index: CandidateIndex,
        session: PendingSession,
        demands: list[ContainerDemand],
        *,
        holders: list[ActiveReservation],
        active_count: int,
        scorer: WeightedScorer,
        descending: bool,
    ) -> None:
        if holders and self._fits_without(index, session, demands, holders, scorer, descending):
            names = tuple(h.reservation.session_id for h in holders)
            self._verdict(
                session,
                VerdictCode.BLOCKED_BY_RESERVATION,
                "would fit now, but only on resources reserved for "
                f"{', '.join(names)}, which has waited longer than the resource group's "
                f"backfill threshold ({group.backfill_wait_threshold_s:g}s)",
                reserved_for=names,
            )
            return
        waited = session.waited_s(self.now)
        threshold = group.backfill_wait_threshold_s
        if threshold is not None and waited >= threshold and active_count < group.max_reservations:
            taken = reserve(index, session, demands, waited_s=waited)
            if taken is not None:
                holders.append(taken)
                reservation = taken.reservation
                self.reservations[session.session_id] = reservation
                self._verdict(
                    session,
                    VerdictCode.WAITING_FOR_RESERVATION,
                    reservation_message(reservation, threshold),
                    reservation=reservation,
                )
                return
        # Multi-node: per slot, what the largest container needs on its node.
        widest: dict[str, Decimal] = {}
        for unit in self._needs(session, demands):
            for slot, amount in unit.items():
                widest[slot] = max(widest.get(slot, ZERO), amount)
        needs = SlotMap(widest)
        largest = SlotMap({slot: index.largest_free(slot) for slot in needs})
        self._verdict(
            session,
            VerdictCode.NO_NODE_FITS,
            no_fit_message(session, index, needs, largest),
            requested=needs,
            largest_free=largest,
        )

    def _fits_without(
        self,
        index: CandidateIndex,
        session: PendingSession,
        demands: list[ContainerDemand],
        holders: list[ActiveReservation],
        scorer: WeightedScorer,
        descending: bool,
    ) -> bool:
        for holder in holders:
            holder.lift(index)
        try:
            placed = self._place(index, session, demands, scorer=scorer, descending=descending)
            if placed is None:
                return False
            _rollback(index, placed[1])
            return True
        finally:
            for holder in holders:
                holder.restore(index)

    def _why_incompatible(self, session: PendingSession) -> str:
        key = (session.resource_group, session.architecture, session.image)
        cached = self._incompatible.get(key)
        if cached is not None:
            return cached
        nodes = self.nodes_by_group.get(session.resource_group, [])
        if not nodes:
            message = f"resource group {session.resource_group!r} has no nodes"
        else:
            reasons: Counter[str] = Counter()
            for node in nodes:
                for node_filter in ALL_FILTERS:
                    reason = node_filter.reject(node, session)
                    if reason is not None:
                        reasons[reason] += 1
                        break
            detail = "; ".join(
                f"{count} node{'s' if count > 1 else ''}: {reason}"
                for reason, count in sorted(reasons.items(), key=lambda r: (-r[1], r[0]))
            )
            message = (
                f"no node in resource group {session.resource_group!r} can run "
                f"{session.architecture} image {session.image}: {detail}"
            )
        self._incompatible[key] = message
        return message

    def _verdict(
        self,
        session: PendingSession,
        code: VerdictCode,
        message: str,
        *,
        quota: tuple[QuotaViolation, ...] = (),
        requested: SlotMap = EMPTY,
        largest_free: SlotMap = EMPTY,
        reserved_for: tuple[str, ...] = (),
        reservation: Reservation | None = None,
    ) -> None:
        self.drafts[session.session_id] = _Draft(
            session=session,
            code=code,
            message=message,
            quota=quota,
            requested=requested,
            largest_free=largest_free,
            reserved_for=reserved_for,
            reservation=reservation,
        )


def _finish(draft: _Draft, position: int | None) -> Verdict:
    suffix = f" (queue position {position})" if position is not None else ""
    return Verdict(
        session_id=draft.session.session_id,
        code=draft.code,
        message=draft.message + suffix,
        queue_position=position,
        quota=draft.quota,
        requested=draft.requested,
        largest_free=draft.largest_free,
        reserved_for=draft.reserved_for,
        reservation=draft.reservation,
    )


def _rollback(index: CandidateIndex, undos: list[Undo]) -> None:
    for undo in reversed(undos):
        revert(undo)
        index.update(undo.node)


def _size_key(demand: ContainerDemand) -> tuple[int, Decimal, Decimal]:
    return (
        -sum(demand.whole.values()),
        -sum((sum(a.values(), ZERO) for a in demand.shares.values()), ZERO),
        -demand.node.get("cpu", ZERO),
    )


def _shares_only(slots: SlotMap) -> bool:
    return all(slot_kind(s) is SlotKind.SHARE for s in slots)
