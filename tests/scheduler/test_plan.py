from __future__ import annotations

import pytest

from manager.scheduler import (
    PendingSession,
    ResourceGroup,
    SlotMap,
    Snapshot,
    VerdictCode,
    schedule,
)

from .builders import NOW, S, gpu_node, gpus, session, snapshot


@pytest.mark.parametrize(
    ("pending", "code", "fragment"),
    [
        (session("s", group="nope"), "resource_group_denied", "'nope' does not exist"),
        (
            session("s", project="outsider"),
            "resource_group_denied",
            "project 'outsider' may not use resource group 'default'",
        ),
        (session("s", SlotMap()), "invalid_request", "container 0: a container requests no"),
        (
            session("s", S({"cuda.device": "1.5"})),
            "invalid_request",
            "not a whole number of devices",
        ),
        (
            session("s", gpus(16)),
            "request_too_large",
            "requests cuda.device=16 but the largest node in resource group 'default' has "
            "cuda.device=8",
        ),
        (
            session("s", S({"cuda.shares": 2})),
            "request_too_large",
            "one device in resource group 'default' has cuda.shares=1",
        ),
        (session("s", S({"tpu.device": 1})), "request_too_large", "has none of it"),
        (
            session("s", gpus(4)),
            "no_node_fits",
            "largest free on one node: cpu=64 cuda.device=2 mem=512 GiB",
        ),
    ],
)
def test_each_unplaced_session_gets_a_stable_code_and_a_useful_message(
    pending: PendingSession, code: str, fragment: str
) -> None:
    groups = [ResourceGroup("default", allowed_projects=frozenset({"p1"}))]
    nodes = [gpu_node("n1", busy=range(6), shares={6: 1, 7: 1})]
    plan = schedule(snapshot([pending], nodes, groups=groups), now=NOW)
    verdict = plan.verdicts["s"]
    assert verdict.code == VerdictCode(code)
    assert fragment in verdict.message


def test_queue_positions_count_only_sessions_still_pending_in_policy_order() -> None:
    snap = snapshot(
        [
            session("first", gpus(8), waited_s=50),
            session("placed", gpus(1), waited_s=40),
            session("second", gpus(8), waited_s=30),
            session("elsewhere", group="missing", waited_s=20),
        ],
        [gpu_node("n1", busy=range(4))],
    )
    plan = schedule(snap, now=NOW)
    assert plan.verdicts["first"].queue_position == 1
    assert plan.verdicts["second"].queue_position == 2
    assert plan.verdicts["elsewhere"].queue_position is None
    assert plan.verdicts["second"].message.endswith("(queue position 2)")


def test_each_resource_group_schedules_onto_its_own_nodes_with_its_own_policy() -> None:
    groups = [ResourceGroup("a100"), ResourceGroup("h100", ordering="priority")]  # type: ignore[arg-type]
    snap = snapshot(
        [
            session("a", gpus(1), group="a100"),
            session("h-low", gpus(8), group="h100", waited_s=100),
            session("h-high", gpus(8), group="h100", priority=9, waited_s=1),
        ],
        [gpu_node("a1", group="a100"), gpu_node("h1", group="h100")],
        groups=groups,
    )
    plan = schedule(snap, now=NOW)
    assert plan.assignments["a"].node_ids == ("a1",)
    assert plan.assignments["h-high"].node_ids == ("h1",)
    assert plan.verdicts["h-low"].code == "no_node_fits"


def test_the_plan_is_deterministic() -> None:
    pending = [session(f"s{i}", gpus(i % 3 + 1), waited_s=100 - i) for i in range(20)]
    nodes = [gpu_node(f"n{i}", busy=range(i % 5)) for i in range(5)]
    first = schedule(snapshot(pending, nodes), now=NOW)
    second = schedule(snapshot(pending, nodes), now=NOW)
    assert first == second


def test_assignments_report_slots_per_node_for_the_guarded_commit() -> None:
    plan = schedule(
        snapshot([session("s", gpus(2), S(cpu=2))], [gpu_node("n1")]),
        now=NOW,
    )
    assert plan.assignments["s"].slots_on("n1") == gpus(2) + S(cpu=2)


def test_snapshots_refuse_duplicate_ids() -> None:
    with pytest.raises(ValueError, match="duplicate session ids in snapshot: a"):
        Snapshot(pending=(session("a"), session("a")), nodes=(), resource_groups={})
