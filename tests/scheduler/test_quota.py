from __future__ import annotations

import pytest

from manager.scheduler import QuotaLimit, Scope, ScopeUsage, schedule

from .builders import NOW, S, gpu_node, gpus, session, snapshot

NODES = [gpu_node("n1"), gpu_node("n2")]


@pytest.mark.parametrize(
    ("scope", "limit", "used", "expected"),
    [
        (
            Scope.project("p1"),
            8,
            8,
            "scope=project (p1) limit cuda.device=8 used=8 requested=2 (over by 2)",
        ),
        (
            Scope.domain("d1"),
            9,
            8,
            "scope=domain (d1) limit cuda.device=9 used=8 requested=2 (over by 1)",
        ),
        (
            Scope.user("u1"),
            3,
            2,
            "scope=user (u1) limit cuda.device=3 used=2 requested=2 (over by 1)",
        ),
        (
            Scope.user_in_project("p1", "u1"),
            2,
            1,
            "scope=user_in_project (p1/u1) limit cuda.device=2 used=1 requested=2 (over by 1)",
        ),
    ],
)
def test_a_quota_verdict_names_the_scope_the_limit_the_usage_and_the_excess(
    scope: Scope, limit: int, used: int, expected: str
) -> None:
    snap = snapshot(
        [session("s", gpus(2))],
        NODES,
        quotas={scope: QuotaLimit.parse({"cuda.device": limit})},
        usage={scope: ScopeUsage(slots=S({"cuda.device": used}), sessions=1)},
    )
    verdict = schedule(snap, now=NOW).verdicts["s"]
    assert verdict.code == "quota_exceeded"
    assert expected in verdict.message
    (violation,) = verdict.quota
    assert (violation.scope, violation.slot, violation.excess) == (
        scope,
        "cuda.device",
        used + 2 - limit,
    )


def test_the_tightest_limit_is_reported_first_when_several_scopes_are_exceeded() -> None:
    snap = snapshot(
        [session("s", gpus(4))],
        NODES,
        quotas={
            Scope.domain("d1"): QuotaLimit.parse({"cuda.device": 100}),
            Scope.project("p1"): QuotaLimit.parse({"cuda.device": 10}),
            Scope.user("u1"): QuotaLimit.parse({"cuda.device": 4}),
        },
        usage={
            Scope.domain("d1"): ScopeUsage(slots=S({"cuda.device": 98})),
            Scope.project("p1"): ScopeUsage(slots=S({"cuda.device": 8})),
            Scope.user("u1"): ScopeUsage(slots=S({"cuda.device": 1})),
        },
    )
    verdict = schedule(snap, now=NOW).verdicts["s"]
    assert [v.scope.kind.value for v in verdict.quota] == ["domain", "project", "user"]


def test_quota_usage_is_tracked_as_the_cycle_assigns_sessions() -> None:
    snap = snapshot(
        [session(f"s{i}", gpus(2), waited_s=100 - i) for i in range(3)],
        NODES,
        quotas={Scope.project("p1"): QuotaLimit.parse({"cuda.device": 5})},
        usage={Scope.project("p1"): ScopeUsage(slots=S({"cuda.device": 1}))},
    )
    plan = schedule(snap, now=NOW)
    assert list(plan.assignments) == ["s0", "s1"]
    assert plan.verdicts["s2"].code == "quota_exceeded"
    assert "used=5 requested=2" in plan.verdicts["s2"].message


def test_max_sessions_limits_how_many_sessions_a_scope_may_run() -> None:
    snap = snapshot(
        [session("a", waited_s=20), session("b", waited_s=10)],
        NODES,
        quotas={Scope.user("u1"): QuotaLimit(max_sessions=2)},
        usage={Scope.user("u1"): ScopeUsage(sessions=1)},
    )
    plan = schedule(snap, now=NOW)
    assert list(plan.assignments) == ["a"]
    verdict = plan.verdicts["b"]
    assert verdict.code == "quota_exceeded"
    assert "limit sessions=2 used=2 requested=1" in verdict.message


def test_memory_quota_messages_use_binary_units() -> None:
    snap = snapshot(
        [session("s", S(cpu=1, mem="8g"))],
        NODES,
        quotas={Scope.project("p1"): QuotaLimit.parse({"mem": "16g"})},
        usage={Scope.project("p1"): ScopeUsage(slots=S(mem="12g"))},
    )
    verdict = schedule(snap, now=NOW).verdicts["s"]
    assert "limit mem=16 GiB used=12 GiB requested=8 GiB (over by 4 GiB)" in verdict.message


def test_a_quota_blocked_session_does_not_block_others_of_another_project() -> None:
    snap = snapshot(
        [session("blocked", gpus(1), waited_s=100), session("other", gpus(1), project="p2")],
        NODES,
        quotas={Scope.project("p1"): QuotaLimit.parse({"cuda.device": 0})},
    )
    plan = schedule(snap, now=NOW)
    assert list(plan.assignments) == ["other"]
    assert plan.verdicts["blocked"].code == "quota_exceeded"
