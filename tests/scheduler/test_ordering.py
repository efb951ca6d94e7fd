from __future__ import annotations

from manager.scheduler import (
    DrfOrdering,
    DrfUsage,
    FifoOrdering,
    OrderingContext,
    OrderingKind,
    PriorityOrdering,
    ResourceGroup,
    schedule,
)

from .builders import NOW, S, gpu_node, gpus, session, snapshot

CAPACITY = S({"cpu": 100, "cuda.device": 10})


def ids(sessions: list) -> list[str]:  # type: ignore[type-arg]
    return [s.session_id for s in sessions]


class TestFifoAndPriority:
    def test_fifo_orders_oldest_first_and_breaks_ties_by_id(self) -> None:
        queue = [
            session("b", waited_s=10),
            session("a", waited_s=10),
            session("c", waited_s=30),
        ]
        assert ids(FifoOrdering().order(queue, context=OrderingContext())) == ["c", "a", "b"]

    def test_priority_orders_higher_priority_first_then_fifo(self) -> None:
        queue = [
            session("old-low", waited_s=100, priority=1),
            session("new-high", waited_s=1, priority=5),
            session("old-high", waited_s=50, priority=5),
        ]
        ordered = PriorityOrdering().order(queue, context=OrderingContext())
        assert ids(ordered) == ["old-high", "new-high", "old-low"]


class TestDrf:
    def test_the_user_with_the_lower_dominant_share_goes_first(self) -> None:
        queue = [
            session("heavy-1", S({"cuda.device": 1}), user="heavy", waited_s=100),
            session("light-1", S({"cuda.device": 1}), user="light", waited_s=1),
        ]
        usage = DrfUsage(users={"heavy": S({"cuda.device": 5}), "light": S(cpu=10)})
        ordered = DrfOrdering().order(
            queue, context=OrderingContext(capacity=CAPACITY, usage=usage)
        )
        assert ids(ordered) == ["light-1", "heavy-1"]

    def test_progressive_filling_interleaves_users_instead_of_draining_one_queue(self) -> None:
        queue = [
            session(f"a{i}", S({"cuda.device": 1}), user="a", waited_s=100 - i) for i in range(3)
        ]
        queue += [
            session(f"b{i}", S({"cuda.device": 1}), user="b", waited_s=50 - i) for i in range(3)
        ]
        ordered = DrfOrdering().order(queue, context=OrderingContext(capacity=CAPACITY))
        assert ids(ordered) == ["a0", "b0", "a1", "b1", "a2", "b2"]

    def test_projects_are_balanced_before_users_within_them(self) -> None:
        # Project p1 already holds half the GPUs; p2's user goes first although p1's user
        # personally holds nothing.
        queue = [
            session("p1-new-user", S({"cuda.device": 1}), project="p1", user="x", waited_s=100),
            session("p2-user", S({"cuda.device": 1}), project="p2", user="y", waited_s=1),
        ]
        usage = DrfUsage(
            users={"y": S({"cuda.device": 2})}, projects={"p1": S({"cuda.device": 5})}
        )
        ordered = DrfOrdering().order(
            queue, context=OrderingContext(capacity=CAPACITY, usage=usage)
        )
        assert ids(ordered) == ["p2-user", "p1-new-user"]

    def test_drf_group_gives_scarce_gpus_to_the_user_holding_fewer(self) -> None:
        # Two free GPUs, two requests: the heavy user's older request loses to the light one.
        snap = snapshot(
            [
                session("heavy", gpus(2), user="heavy", waited_s=500),
                session("light", gpus(2), user="light", waited_s=5),
            ],
            [gpu_node("n1", busy=range(6))],
            groups=[ResourceGroup("default", ordering=OrderingKind.DRF)],
            drf={"default": DrfUsage(users={"heavy": S({"cuda.device": 6})})},
        )
        plan = schedule(snap, now=NOW)
        assert list(plan.assignments) == ["light"]
        assert plan.verdicts["heavy"].code == "no_node_fits"

    def test_every_session_is_returned_exactly_once(self) -> None:
        queue = [
            session(f"s{i}", S(cpu=i + 1), user=f"u{i % 3}", project=f"p{i % 2}", waited_s=i)
            for i in range(20)
        ]
        ordered = DrfOrdering().order(queue, context=OrderingContext(capacity=CAPACITY))
        assert sorted(ids(ordered)) == sorted(ids(queue))
