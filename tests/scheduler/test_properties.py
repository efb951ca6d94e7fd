"""Property tests: whatever the snapshot, a plan never over-commits anything and explains every
session it does not place."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manager.scheduler import (
    DeviceState,
    ExpectedRelease,
    Node,
    OrderingKind,
    PendingSession,
    PlacementKind,
    QuotaLimit,
    ResourceGroup,
    Scope,
    ScopeUsage,
    SlotKind,
    SlotMap,
    Snapshot,
    schedule,
    slot_kind,
)

from .builders import NOW

D = Decimal
SHARE_STEPS = [D(0), D("0.25"), D("0.5"), D("0.75"), D(1)]


@st.composite
def nodes(draw: st.DrawFn, index: int) -> Node:
    node_id = f"n{index}"
    count = draw(st.integers(0, 4))
    sharing = draw(st.booleans())
    devices = []
    for i in range(count):
        busy = draw(st.booleans())
        if sharing:
            free_share = D(0) if busy else draw(st.sampled_from(SHARE_STEPS))
            devices.append(
                DeviceState(
                    device_id=f"{node_id}-g{i}",
                    slot="cuda.device",
                    whole_free=free_share == 1,
                    numa_node=draw(st.integers(0, 1)),
                    capacity=SlotMap({"cuda.shares": D(1)}),
                    free=SlotMap({"cuda.shares": free_share}),
                )
            )
        else:
            devices.append(
                DeviceState(
                    device_id=f"{node_id}-g{i}",
                    slot="cuda.device",
                    whole_free=not busy,
                    numa_node=draw(st.integers(0, 1)),
                )
            )
    busy_ids = [d.device_id for d in devices if not d.whole_free]
    releases = tuple(
        ExpectedRelease(
            session_id=f"{node_id}-r{j}",
            ends_at=draw(st.sampled_from([None, NOW + timedelta(minutes=10 * (j + 1))])),
            slots=SlotMap({"cpu": D(draw(st.integers(0, 4)))}),
            device_ids=(device_id,),
        )
        for j, device_id in enumerate(busy_ids)
    )
    total = {"cpu": D(16), "mem": D(64), "cuda.device": D(count)}
    if sharing:
        total["cuda.shares"] = D(count)
    return Node(
        node_id=node_id,
        resource_group="g",
        architecture=draw(st.sampled_from(["x86_64", "x86_64", "aarch64"])),
        total=SlotMap(total),
        free=SlotMap({"cpu": D(draw(st.integers(0, 16))), "mem": D(draw(st.integers(0, 64)))}),
        devices=tuple(devices),
        images=frozenset({"img"}),
        schedulable=draw(st.booleans()) or draw(st.booleans()),
        releases=releases,
    )


container_requests = st.builds(
    lambda cpu, mem, gpus, share: SlotMap(
        {"cpu": D(cpu), "mem": D(mem), "cuda.device": D(gpus), "cuda.shares": share}
    ),
    st.integers(0, 6),
    st.integers(0, 24),
    st.integers(0, 3),
    st.sampled_from([D(0), D(0), D("0.25"), D("0.5")]),
)


@st.composite
def pending_sessions(draw: st.DrawFn, index: int) -> PendingSession:
    project = draw(st.sampled_from(["p0", "p1"]))
    return PendingSession(
        session_id=f"s{index}",
        created_at=NOW - timedelta(seconds=draw(st.integers(0, 2000))),
        resource_group=draw(st.sampled_from(["g", "g", "g", "missing"])),
        domain_id="d",
        project_id=project,
        user_id=draw(st.sampled_from(["u0", "u1", "u2"])),
        containers=tuple(draw(st.lists(container_requests, min_size=1, max_size=3))),
        image="img",
        architecture="x86_64",
        priority=draw(st.integers(0, 2)),
        multi_node=draw(st.booleans()),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    node_count = draw(st.integers(1, 5))
    session_count = draw(st.integers(1, 12))
    group = ResourceGroup(
        "g",
        ordering=draw(st.sampled_from(list(OrderingKind))),
        placement=draw(st.sampled_from(list(PlacementKind))),
        backfill_wait_threshold_s=draw(st.sampled_from([None, 0.0, 600.0])),
        max_reservations=draw(st.integers(1, 2)),
    )
    quotas: dict[Scope, QuotaLimit] = {}
    usage: dict[Scope, ScopeUsage] = {}
    for scope in [Scope.project("p0"), Scope.user("u1"), Scope.user_in_project("p1", "u2")]:
        if draw(st.booleans()):
            quotas[scope] = QuotaLimit(
                slots={
                    "cuda.device": D(draw(st.integers(0, 6))),
                    "cpu": D(draw(st.integers(0, 20))),
                },
                max_sessions=draw(st.sampled_from([None, 1, 3])),
            )
            usage[scope] = ScopeUsage(
                slots=SlotMap({"cuda.device": D(draw(st.integers(0, 3)))}),
                sessions=draw(st.integers(0, 2)),
            )
    return Snapshot(
        pending=tuple(draw(pending_sessions(i)) for i in range(session_count)),
        nodes=tuple(draw(nodes(i)) for i in range(node_count)),
        resource_groups={"g": group},
        quotas=quotas,
        usage=usage,
    )


PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(snapshots())
def test_every_pending_session_is_either_assigned_or_has_exactly_one_verdict(
    snap: Snapshot,
) -> None:
    plan = schedule(snap, now=NOW)
    pending = {s.session_id for s in snap.pending}
    assert set(plan.assignments) | set(plan.verdicts) == pending
    assert not set(plan.assignments) & set(plan.verdicts)
    assert set(plan.reservations) <= set(plan.verdicts)


@PROPERTY_SETTINGS
@given(snapshots())
def test_a_plan_never_over_commits_devices_shares_cpu_or_memory(snap: Snapshot) -> None:
    plan = schedule(snap, now=NOW)
    nodes = {n.node_id: n for n in snap.nodes}
    sessions = {s.session_id: s for s in snap.pending}
    node_use: dict[str, defaultdict[str, Decimal]] = {}
    whole_ids: list[str] = []
    shares: defaultdict[str, Decimal] = defaultdict(Decimal)
    for assignment in plan.assignments.values():
        session = sessions[assignment.session_id]
        assert len(assignment.containers) == len(session.containers)
        if not session.multi_node:
            assert len(assignment.node_ids) == 1
        for container in assignment.containers:
            node = nodes[container.node_id]
            assert node.schedulable and node.architecture == session.architecture
            assert container.slots == session.containers[container.container_index]
            use = node_use.setdefault(node.node_id, defaultdict(Decimal))
            for slot, amount in container.slots.items():
                kind = slot_kind(slot)
                if kind is SlotKind.NODE:
                    use[slot] += amount
                elif kind is SlotKind.DEVICE:
                    ids = container.device_ids[slot]
                    assert len(ids) == amount
                    whole_ids.extend(ids)
                else:
                    (device_id,) = container.device_ids[slot]
                    shares[device_id] += amount
    for node_id, use in node_use.items():
        for slot, amount in use.items():
            assert amount <= nodes[node_id].free.get(slot), (node_id, slot)
    assert len(whole_ids) == len(set(whole_ids)), "a device was given to two containers"
    devices = {d.device_id: d for n in snap.nodes for d in n.devices}
    for device_id in whole_ids:
        assert devices[device_id].whole_free
        assert device_id not in shares, "a device was given whole and shared"
    for device_id, amount in shares.items():
        assert amount <= devices[device_id].free.get("cuda.shares")


@PROPERTY_SETTINGS
@given(snapshots())
def test_a_plan_never_exceeds_any_quota(snap: Snapshot) -> None:
    plan = schedule(snap, now=NOW)
    sessions = {s.session_id: s for s in snap.pending}
    assigned_slots: dict[Scope, Counter[str]] = {}
    assigned_count: Counter[Scope] = Counter()
    for session_id in plan.assignments:
        session = sessions[session_id]
        for scope in session.scopes():
            assigned_slots.setdefault(scope, Counter()).update(dict(session.requested))
            assigned_count[scope] += 1
    for scope, limit in snap.quotas.items():
        used = snap.usage.get(scope, ScopeUsage())
        added = assigned_slots.get(scope, Counter())
        for slot, cap in limit.slots.items():
            if added[slot]:
                assert used.slots.get(slot) + added[slot] <= cap, (scope, slot)
        if limit.max_sessions is not None and assigned_count[scope]:
            assert used.sessions + assigned_count[scope] <= limit.max_sessions


@PROPERTY_SETTINGS
@given(snapshots())
def test_reservations_hold_devices_of_their_own_node_only_for_overdue_sessions(
    snap: Snapshot,
) -> None:
    plan = schedule(snap, now=NOW)
    nodes = {n.node_id: n for n in snap.nodes}
    sessions = {s.session_id: s for s in snap.pending}
    group = snap.resource_groups["g"]
    for session_id, reservation in plan.reservations.items():
        assert group.backfill_wait_threshold_s is not None
        assert sessions[session_id].waited_s(NOW) >= group.backfill_wait_threshold_s
        assert plan.verdicts[session_id].code == "waiting_for_reservation"
        for held in reservation.nodes:
            known = {d.device_id for d in nodes[held.node_id].devices}
            assert {i for ids in held.device_ids.values() for i in ids} <= known
    assert len(plan.reservations) <= group.max_reservations
