from __future__ import annotations

from manager.scheduler import PlacementKind, ResourceGroup, schedule

from .builders import NOW, S, gpu_node, gpus, session, snapshot


class TestFragmentation:
    def test_two_free_gpus_on_two_nodes_do_not_fit_a_two_gpu_single_node_request(self) -> None:
        snap = snapshot(
            [session("s", gpus(2))],
            [gpu_node("n1", busy=range(7)), gpu_node("n2", busy=range(7))],
        )
        plan = schedule(snap, now=NOW)
        assert plan.assignments == {}
        verdict = plan.verdicts["s"]
        assert verdict.code == "no_node_fits"
        assert verdict.largest_free["cuda.device"] == 1
        assert "fragmented (cuda.device: 2 free across the group)" in verdict.message

    def test_a_request_lands_on_the_node_whose_free_devices_fit_it(self) -> None:
        snap = snapshot(
            [session("s", gpus(2))],
            [gpu_node("n1", busy=range(7)), gpu_node("n2", busy=range(6))],
        )
        plan = schedule(snap, now=NOW)
        container = plan.assignments["s"].containers[0]
        assert container.node_id == "n2"
        assert container.device_ids == {"cuda.device": ("n2-g6", "n2-g7")}

    def test_fractional_shares_come_from_one_device_and_prefer_a_shared_one(self) -> None:
        node = gpu_node("n1", gpus=2, shares={0: "0.5"})
        snap = snapshot([session("s", S({"cuda.shares": "0.5", "cpu": 1}))], [node])
        plan = schedule(snap, now=NOW)
        assert plan.assignments["s"].containers[0].device_ids == {"cuda.shares": ("n1-g0",)}

    def test_shares_spread_over_two_devices_do_not_fit_one_request(self) -> None:
        node = gpu_node("n1", gpus=2, shares={0: "0.5", 1: "0.5"})
        plan = schedule(snapshot([session("s", S({"cuda.shares": "0.75"}))], [node]), now=NOW)
        assert plan.verdicts["s"].code == "no_node_fits"

    def test_a_partly_shared_device_is_not_given_away_as_a_whole_device(self) -> None:
        node = gpu_node("n1", gpus=1, shares={0: "0.5"})
        plan = schedule(snapshot([session("s", gpus(1))], [node]), now=NOW)
        assert plan.verdicts["s"].code == "no_node_fits"


class TestNuma:
    def test_devices_come_from_one_numa_node_when_one_has_enough(self) -> None:
        # Free: g1 (numa 0), g4 g5 (numa 1). A 2-GPU request takes g4+g5, not g1+g4.
        node = gpu_node("n1", busy=[0, 2, 3, 6, 7], numa=[0, 0, 0, 0, 1, 1, 1, 1])
        plan = schedule(snapshot([session("s", gpus(2))], [node]), now=NOW)
        ids = plan.assignments["s"].containers[0].device_ids["cuda.device"]
        assert ids == ("n1-g4", "n1-g5")

    def test_the_node_where_the_request_fits_one_numa_node_is_preferred(self) -> None:
        split = gpu_node("a-split", busy=[1, 2, 3, 5, 6, 7], numa=[0, 0, 0, 0, 1, 1, 1, 1])
        local = gpu_node("b-local", busy=[0, 1, 2, 3, 4, 5], numa=[0, 0, 0, 0, 1, 1, 1, 1])
        plan = schedule(snapshot([session("s", gpus(2))], [split, local]), now=NOW)
        assert plan.assignments["s"].node_ids == ("b-local",)

    def test_devices_span_as_few_numa_nodes_as_possible_when_none_has_enough(self) -> None:
        node = gpu_node("n1", busy=[0, 4, 5], numa=[0, 0, 0, 0, 1, 1, 1, 1])
        plan = schedule(snapshot([session("s", gpus(5))], [node]), now=NOW)
        ids = plan.assignments["s"].containers[0].device_ids["cuda.device"]
        assert sorted(ids) == ["n1-g1", "n1-g2", "n1-g3", "n1-g6", "n1-g7"]


class TestStrategy:
    def test_bin_pack_fills_the_fullest_node_that_fits(self) -> None:
        nodes = [gpu_node("empty"), gpu_node("half", busy=range(4))]
        plan = schedule(snapshot([session("s", gpus(1))], nodes), now=NOW)
        assert plan.assignments["s"].node_ids == ("half",)

    def test_spread_places_on_the_emptiest_node(self) -> None:
        nodes = [gpu_node("empty"), gpu_node("half", busy=range(4))]
        group = ResourceGroup("default", placement=PlacementKind.SPREAD)
        plan = schedule(snapshot([session("s", gpus(1))], nodes, groups=[group]), now=NOW)
        assert plan.assignments["s"].node_ids == ("empty",)


class TestFilters:
    def test_cordoned_nodes_are_never_chosen(self) -> None:
        nodes = [gpu_node("cordoned", schedulable=False)]
        plan = schedule(snapshot([session("s", gpus(1))], nodes), now=NOW)
        verdict = plan.verdicts["s"]
        assert verdict.code == "no_compatible_node"
        assert "1 node: node is cordoned" in verdict.message

    def test_architecture_must_match(self) -> None:
        nodes = [gpu_node("arm", architecture="aarch64"), gpu_node("x86")]
        plan = schedule(snapshot([session("s", gpus(1), architecture="aarch64")], nodes), now=NOW)
        assert plan.assignments["s"].node_ids == ("arm",)

    def test_a_missing_image_rules_a_node_out_unless_it_can_pull(self) -> None:
        nodes = [gpu_node("has-it", images=["other"], busy=range(4)), gpu_node("n2")]
        plan = schedule(snapshot([session("s", gpus(1), image="other")], nodes), now=NOW)
        assert plan.assignments["s"].node_ids == ("has-it",)
        plan = schedule(snapshot([session("s", gpus(1), image="nowhere")], nodes), now=NOW)
        assert plan.verdicts["s"].code == "no_compatible_node"
        assert "image nowhere is not present" in plan.verdicts["s"].message

    def test_nodes_of_other_resource_groups_are_not_used(self) -> None:
        nodes = [gpu_node("other", group="b")]
        groups = [ResourceGroup("default"), ResourceGroup("b")]
        plan = schedule(snapshot([session("s", gpus(1))], nodes, groups=groups), now=NOW)
        assert plan.verdicts["s"].code == "no_compatible_node"
        assert "has no nodes" in plan.verdicts["s"].message


class TestMultiContainer:
    def test_a_single_node_session_puts_every_container_on_one_node(self) -> None:
        nodes = [gpu_node("n1", busy=range(6)), gpu_node("n2", busy=range(4))]
        plan = schedule(snapshot([session("s", gpus(2), gpus(2))], nodes), now=NOW)
        assignment = plan.assignments["s"]
        assert assignment.node_ids == ("n2",)
        used = [set(c.device_ids["cuda.device"]) for c in assignment.containers]
        assert not used[0] & used[1]

    def test_a_multi_node_session_spreads_containers_across_nodes(self) -> None:
        nodes = [gpu_node("n1"), gpu_node("n2")]
        plan = schedule(
            snapshot([session("s", gpus(8), gpus(8), multi_node=True)], nodes), now=NOW
        )
        assert sorted(plan.assignments["s"].node_ids) == ["n1", "n2"]
        assert [c.container_index for c in plan.assignments["s"].containers] == [0, 1]

    def test_a_multi_node_session_takes_nothing_unless_every_container_fits(self) -> None:
        nodes = [gpu_node("n1"), gpu_node("n2", busy=range(4))]
        pending = [
            session("gang", gpus(8), gpus(8), multi_node=True, waited_s=100),
            session("small", gpus(4), waited_s=10),
        ]
        plan = schedule(snapshot(pending, nodes), now=NOW)
        assert "gang" not in plan.assignments
        assert plan.verdicts["gang"].code == "no_node_fits"
        # Nothing the gang tried stayed taken: the small session still packs onto n2.
        assert plan.assignments["small"].node_ids == ("n2",)
