from __future__ import annotations

from datetime import timedelta

from manager.scheduler import ExpectedRelease, ResourceGroup, schedule

from .builders import NOW, S, gpu_node, gpus, session, snapshot

BACKFILL = ResourceGroup("default", backfill_wait_threshold_s=600)


def release(session_id: str, *, minutes: int | None, devices: list[str], cpu: int = 0):  # type: ignore[no-untyped-def]
    return ExpectedRelease(
        session_id=session_id,
        ends_at=NOW + timedelta(minutes=minutes) if minutes is not None else None,
        slots=S(cpu=cpu),
        device_ids=tuple(devices),
    )


class TestBackfill:
    def test_a_head_that_does_not_fit_does_not_block_smaller_sessions_behind_it(self) -> None:
        snap = snapshot(
            [session("big", gpus(8), waited_s=60), session("small", gpus(2), waited_s=30)],
            [gpu_node("n1", busy=range(4))],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        assert list(plan.assignments) == ["small"]
        assert plan.verdicts["big"].code == "no_node_fits"
        assert plan.reservations == {}

    def test_a_session_past_the_threshold_reserves_the_node_that_frees_up_soonest(self) -> None:
        late = gpu_node(
            "late", busy=range(4), releases=[release("r1", minutes=90, devices=["late-g0"])]
        )
        soon = gpu_node(
            "soon",
            busy=range(4),
            releases=[
                release("r2", minutes=10, devices=["soon-g0", "soon-g1"]),
                release("r3", minutes=20, devices=["soon-g2", "soon-g3"]),
            ],
        )
        snap = snapshot(
            [session("big", gpus(7), waited_s=3600), session("small", gpus(4), waited_s=30)],
            [late, soon],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        reservation = plan.reservations["big"]
        (held,) = reservation.nodes
        assert held.node_id == "soon"
        # 4 free + 2 at minute 10 is not enough; + 2 more at minute 20 is.
        assert held.expected_at == NOW + timedelta(minutes=20)
        # Busy devices are held first; only three of today's free devices are needed.
        assert held.device_ids["cuda.device"][:4] == ("soon-g0", "soon-g1", "soon-g2", "soon-g3")
        assert len(set(held.device_ids["cuda.device"])) == 7
        verdict = plan.verdicts["big"]
        assert verdict.code == "waiting_for_reservation"
        assert verdict.reservation == reservation
        assert "holds a reservation on soon" in verdict.message
        # The small session cannot take the soon node's free GPUs; it packs elsewhere.
        assert plan.assignments["small"].node_ids == ("late",)

    def test_smaller_sessions_may_not_take_the_reserved_resources(self) -> None:
        snap = snapshot(
            [
                session("big", gpus(8), waited_s=3600),
                session("small", gpus(2), waited_s=30),
            ],
            [gpu_node("n1", busy=range(4))],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        assert plan.verdicts["big"].code == "waiting_for_reservation"
        verdict = plan.verdicts["small"]
        assert verdict.code == "blocked_by_reservation"
        assert verdict.reserved_for == ("big",)
        assert plan.assignments == {}

    def test_backfill_may_use_the_headroom_the_reservation_does_not_need(self) -> None:
        # 4 free now, 4 busy releasing in 10 minutes; the 6-GPU reservation needs only 2 of
        # today's free devices, so a 2-GPU session still starts now.
        node = gpu_node(
            "n1",
            busy=range(4),
            releases=[release("r", minutes=10, devices=[f"n1-g{i}" for i in range(4)])],
        )
        snap = snapshot(
            [session("big", gpus(6), waited_s=3600), session("small", gpus(2), waited_s=30)],
            [node],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        assert plan.verdicts["big"].code == "waiting_for_reservation"
        small = set(plan.assignments["small"].containers[0].device_ids["cuda.device"])
        held = set(plan.reservations["big"].nodes[0].device_ids["cuda.device"])
        assert not small & held

    def test_node_level_slots_are_held_up_to_what_the_reservation_will_need(self) -> None:
        node = gpu_node("n1", busy=range(4), cpu=64, free_cpu=10)
        snap = snapshot(
            [
                session("big", S({"cuda.device": 8, "cpu": 8}), waited_s=3600),
                session("cpu-job", S(cpu=4), waited_s=30),
                session("tiny", S(cpu=2), waited_s=20),
            ],
            [node],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        # Everything running ends at an unknown time; once it has, 64 cpus are free and the
        # reservation needs 8, so today's 10 free cpus are not held.
        assert plan.reservations["big"].nodes[0].held == S()
        assert set(plan.assignments) == {"cpu-job", "tiny"}

    def test_no_reservation_is_made_before_the_threshold(self) -> None:
        snap = snapshot(
            [session("big", gpus(8), waited_s=599), session("small", gpus(2), waited_s=30)],
            [gpu_node("n1", busy=range(4))],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        assert plan.reservations == {}
        assert "small" in plan.assignments

    def test_groups_without_a_threshold_never_reserve(self) -> None:
        snap = snapshot(
            [session("big", gpus(8), waited_s=10**6), session("small", gpus(2))],
            [gpu_node("n1", busy=range(4))],
        )
        plan = schedule(snap, now=NOW)
        assert plan.reservations == {}
        assert "small" in plan.assignments

    def test_at_most_max_reservations_sessions_hold_resources(self) -> None:
        snap = snapshot(
            [
                session("big1", gpus(8), waited_s=7200),
                session("big2", gpus(8), waited_s=3600),
                session("small", gpus(1), waited_s=30),
            ],
            [gpu_node("n1", busy=range(4)), gpu_node("n2", busy=range(4))],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        assert list(plan.reservations) == ["big1"]
        assert plan.verdicts["big2"].code == "no_node_fits"
        held_node = plan.reservations["big1"].nodes[0].node_id
        assert plan.assignments["small"].node_ids != (held_node,)

    def test_a_multi_node_session_reserves_one_node_per_container(self) -> None:
        snap = snapshot(
            [session("gang", gpus(8), gpus(8), multi_node=True, waited_s=3600)],
            [gpu_node("n1", busy=[0]), gpu_node("n2", busy=[0]), gpu_node("n3", busy=range(8))],
            groups=[BACKFILL],
        )
        plan = schedule(snap, now=NOW)
        nodes = plan.reservations["gang"].nodes
        assert len(nodes) == 2
        assert len({n.node_id for n in nodes}) == 2
