"""Allocator: pure unit tests plus a hypothesis state machine over create/destroy sequences."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from agent.allocator import Allocation, Allocator, PortAllocator
from agent.contract import DeviceHealth, DeviceInfo
from agent.errors import (
    AgentDomainError,
    BadRequest,
    DeviceBusy,
    DeviceUnknown,
    InsufficientCapacity,
    PortsExhausted,
    SlotUnknown,
)

D = Decimal


def gpu(index: int, *, numa: int = 0, shares: str | None = None, kind: str = "cuda") -> DeviceInfo:
    return DeviceInfo(
        id=f"{kind}-{index}",
        plugin="fake",
        slot_name=f"{kind}.device",
        numa_node=numa,
        share_slot_name=f"{kind}.shares" if shares else None,
        share_capacity=D(shares) if shares else None,
    )


def allocator(devices: list[DeviceInfo], cpu: str = "8", mem: str = "1000") -> Allocator:
    return Allocator(devices=devices, cpu=D(cpu), mem=D(mem))


class TestAllocator:
    def test_prefers_devices_on_one_numa_node(self) -> None:
        alloc = allocator([gpu(0, numa=0), gpu(1, numa=1), gpu(2, numa=1), gpu(3, numa=0)])
        alloc.allocate(owner="a", slots={"cuda.device": D(1)}, explicit=None)
        got = alloc.allocate(owner="b", slots={"cuda.device": D(2)}, explicit=None)
        assert set(got.devices["cuda.device"]) == {"cuda-1", "cuda-2"}

    def test_spans_numa_nodes_only_when_it_must(self) -> None:
        alloc = allocator([gpu(0, numa=0), gpu(1, numa=1), gpu(2, numa=1)])
        got = alloc.allocate(owner="a", slots={"cuda.device": D(3)}, explicit=None)
        assert len(got.devices["cuda.device"]) == 3

    def test_fractional_shares_pack_onto_one_device_and_block_whole_use(self) -> None:
        alloc = allocator([gpu(0, shares="1"), gpu(1, shares="1")])
        a = alloc.allocate(owner="a", slots={"cuda.shares": D("0.5")}, explicit=None)
        b = alloc.allocate(owner="b", slots={"cuda.shares": D("0.25")}, explicit=None)
        assert a.devices["cuda.shares"].keys() == b.devices["cuda.shares"].keys()
        whole = alloc.allocate(owner="c", slots={"cuda.device": D(1)}, explicit=None)
        shared_id = next(iter(a.devices["cuda.shares"]))
        assert shared_id not in whole.devices["cuda.device"]
        with pytest.raises(InsufficientCapacity):
            alloc.allocate(owner="d", slots={"cuda.device": D(1)}, explicit=None)
        assert alloc.free()["cuda.shares"] == D("0.25")

    def test_explicit_share_devices_restrict_the_choice(self) -> None:
        alloc = allocator([gpu(0, shares="1"), gpu(1, shares="1")])
        got = alloc.allocate(
            owner="a", slots={"cuda.shares": D("0.75")}, explicit={"cuda.shares": ["cuda-1"]}
        )
        assert got.devices == {"cuda.shares": {"cuda-1": D("0.75")}}
        with pytest.raises(DeviceBusy):
            alloc.allocate(
                owner="b", slots={"cuda.shares": D("0.5")}, explicit={"cuda.shares": ["cuda-1"]}
            )
        spread = alloc.allocate(owner="c", slots={"cuda.shares": D("1.25")}, explicit=None)
        assert spread.devices == {"cuda.shares": {"cuda-0": D(1), "cuda-1": D("0.25")}}

    def test_cpu_and_memory_respect_capacity(self) -> None:
        alloc = allocator([], cpu="2", mem="100")
        alloc.allocate(owner="a", slots={"cpu": D("1.5"), "mem": D(60)}, explicit=None)
        with pytest.raises(InsufficientCapacity):
            alloc.allocate(owner="b", slots={"cpu": D(1)}, explicit=None)
        with pytest.raises(InsufficientCapacity):
            alloc.allocate(owner="b", slots={"mem": D(41)}, explicit=None)
        alloc.release("a")
        alloc.allocate(owner="b", slots={"cpu": D(2), "mem": D(100)}, explicit=None)

    @pytest.mark.parametrize(
        ("slots", "explicit", "error"),
        [
            ({"tpu.device": D(1)}, None, SlotUnknown),
            ({"cuda.device": D("1.5")}, None, BadRequest),
            ({"cuda.device": D(1)}, {"cuda.device": ["cuda-9"]}, DeviceUnknown),
            ({"cuda.device": D(2)}, {"cuda.device": ["cuda-0"]}, BadRequest),
            ({"cuda.device": D(2)}, {"cuda.device": ["cuda-0", "cuda-0"]}, BadRequest),
        ],
    )
    def test_bad_requests_change_nothing(self, slots, explicit, error) -> None:
        alloc = allocator([gpu(0), gpu(1)])
        with pytest.raises(error):
            alloc.allocate(owner="a", slots=slots, explicit=explicit)
        assert alloc.free() == alloc.capacity()

    def test_unhealthy_devices_are_never_handed_out(self) -> None:
        sick = gpu(0).model_copy(update={"health": DeviceHealth.UNHEALTHY})
        alloc = allocator([sick, gpu(1)])
        got = alloc.allocate(owner="a", slots={"cuda.device": D(1)}, explicit=None)
        assert list(got.devices["cuda.device"]) == ["cuda-1"]
        with pytest.raises(DeviceBusy):
            alloc.allocate(owner="b", slots={}, explicit={"cuda.device": ["cuda-0"]})

    def test_adopt_rebinds_recorded_allocations_and_refuses_conflicts(self) -> None:
        alloc = allocator([gpu(0), gpu(1, shares="1")])

        def bound(slot: str, device_id: str, amount: str = "1") -> Allocation:
            return Allocation(devices={slot: {device_id: D(amount)}})

        alloc.adopt(owner="a", allocation=bound("cuda.device", "cuda-0"))
        with pytest.raises(DeviceBusy):
            alloc.adopt(owner="b", allocation=bound("cuda.device", "cuda-0"))
        with pytest.raises(DeviceUnknown):
            alloc.adopt(owner="c", allocation=bound("cuda.device", "gone"))
        alloc.adopt(owner="d", allocation=bound("cuda.shares", "cuda-1", "0.7"))
        with pytest.raises(DeviceBusy):
            alloc.adopt(owner="e", allocation=bound("cuda.shares", "cuda-1", "0.5"))
        assert alloc.device_free() == {"cuda-0": D(0), "cuda-1": D("0.3")}


class TestPortAllocator:
    def test_hands_out_distinct_ports_and_reuses_released_ones_last(self) -> None:
        ports = PortAllocator(low=40000, high=40003, host_ip="127.0.0.1", probe=False)
        a = ports.allocate(owner="a", count=2)
        b = ports.allocate(owner="b", count=2)
        assert sorted(a + b) == [40000, 40001, 40002, 40003]
        with pytest.raises(PortsExhausted):
            ports.allocate(owner="c", count=1)
        assert ports.release("a") == a
        assert ports.allocate(owner="c", count=1) == [a[0]]

    def test_adopt_refuses_a_port_someone_else_holds(self) -> None:
        ports = PortAllocator(low=40000, high=40010, host_ip="127.0.0.1", probe=False)
        ports.adopt(owner="a", ports=[40005])
        with pytest.raises(DeviceBusy):
            ports.adopt(owner="b", ports=[40005])


DEVICES = [
    gpu(0, numa=0),
    gpu(1, numa=0),
    gpu(2, numa=1, shares="1"),
    gpu(3, numa=1, shares="1"),
    gpu(4, numa=1, shares="2"),
]
amounts = st.sampled_from([D("0.1"), D("0.25"), D("0.5"), D("0.75"), D(1), D("1.5"), D(3)])


class AllocatorMachine(RuleBasedStateMachine):
    """Random create/destroy sequences never over-commit a device, its shares, cpu or ports."""

    owners = Bundle("owners")

    def __init__(self) -> None:
        super().__init__()
        self.alloc = Allocator(devices=DEVICES, cpu=D(4), mem=D(1000))
        self.ports = PortAllocator(low=41000, high=41007, host_ip="127.0.0.1", probe=False)
        self.counter = 0
        self.given: dict[str, list[int]] = {}

    @rule(
        target=owners,
        whole=st.integers(min_value=0, max_value=3),
        shares=st.one_of(st.none(), amounts),
        cpu=st.sampled_from([D(0), D("0.5"), D(1), D(2)]),
        nports=st.integers(min_value=0, max_value=3),
        explicit=st.one_of(st.none(), st.lists(st.sampled_from([d.id for d in DEVICES]))),
    )
    def create(self, whole, shares, cpu, nports, explicit):
        self.counter += 1
        owner = f"c{self.counter}"
        slots = {"cpu": cpu}
        if whole:
            slots["cuda.device"] = D(whole)
        if shares is not None:
            slots["cuda.shares"] = shares
        explicit_map = None
        if explicit is not None:
            explicit_map = {"cuda.device": explicit}
            slots["cuda.device"] = D(len(explicit))
        before = self.alloc.free()
        try:
            self.alloc.allocate(owner=owner, slots=slots, explicit=explicit_map)
        except AgentDomainError:
            assert self.alloc.free() == before, "a refused request must change nothing"
            return owner
        try:
            self.given[owner] = self.ports.allocate(owner=owner, count=nports)
        except PortsExhausted:
            pass
        return owner

    @rule(owner=owners)
    def destroy(self, owner):
        self.alloc.release(owner)
        self.ports.release(owner)
        self.given.pop(owner, None)
        assert owner not in self.alloc.holders()

    @invariant()
    def no_device_or_share_is_overcommitted(self):
        whole_holders: dict[str, set[str]] = defaultdict(set)
        share_use: dict[str, Decimal] = defaultdict(Decimal)
        share_holders: dict[str, set[str]] = defaultdict(set)
        cpu = D(0)
        for owner, allocation in self.alloc.holders().items():
            cpu += allocation.cpu
            for slot, bound in allocation.devices.items():
                for device_id, amount in bound.items():
                    if slot == "cuda.device":
                        whole_holders[device_id].add(owner)
                    else:
                        share_use[device_id] += amount
                        share_holders[device_id].add(owner)
        capacity = {d.id: d.share_capacity for d in DEVICES}
        for device_id, holders in whole_holders.items():
            assert len(holders) == 1, f"{device_id} held whole by {holders}"
            assert device_id not in share_holders, f"{device_id} whole and shared"
        for device_id, used in share_use.items():
            cap = capacity[device_id]
            assert cap is not None and used <= cap
        assert cpu <= D(4)

    @invariant()
    def ports_have_one_holder(self):
        handed_out = [port for ports in self.given.values() for port in ports]
        assert len(handed_out) == len(set(handed_out)), "a port was given to two containers"
        assert self.ports.held() == {p: o for o, ports in self.given.items() for p in ports}
        assert all(41000 <= port <= 41007 for port in handed_out)


TestAllocatorProperties = AllocatorMachine.TestCase
TestAllocatorProperties.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
