from __future__ import annotations

from decimal import Decimal

import pytest

from manager.scheduler import InvalidSlotValue, SlotKind, SlotMap, slot_family, slot_kind
from manager.scheduler.slots import INFINITY

from .builders import S

GIB = 2**30


class TestParse:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({"mem": "4g"}, {"mem": Decimal(4 * GIB)}),
            ({"mem": "512m"}, {"mem": Decimal(512 * 2**20)}),
            ({"mem": "1.5GiB"}, {"mem": Decimal(3 * 2**29)}),
            ({"mem": 1024}, {"mem": Decimal(1024)}),
            ({"cuda.mem": "8g"}, {"cuda.mem": Decimal(8 * GIB)}),
            ({"cpu": "0.5"}, {"cpu": Decimal("0.5")}),
            ({"cuda.shares": "0.25", "cuda.device": 0}, {"cuda.shares": Decimal("0.25")}),
        ],
    )
    def test_amounts_are_parsed_exactly_with_binary_units_for_memory(
        self, values: dict[str, object], expected: dict[str, Decimal]
    ) -> None:
        assert dict(SlotMap.parse(values)) == expected  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "values",
        [
            {"cpu": "4g"},
            {"mem": "lots"},
            {"cpu": -1},
            {"cpu": 0.5},
            {"mem": "4x"},
            {"cpu": True},
        ],
    )
    def test_bad_amounts_raise_a_stable_error_code(self, values: dict[str, object]) -> None:
        with pytest.raises(InvalidSlotValue) as info:
            SlotMap.parse(values)  # type: ignore[arg-type]
        assert info.value.code == "invalid_slot_value"


class TestArithmetic:
    def test_addition_and_subtraction_are_exact_for_fractional_shares(self) -> None:
        total = S({"cuda.shares": "0.1"}) + S({"cuda.shares": "0.2"})
        assert total == S({"cuda.shares": "0.3"})
        assert total - S({"cuda.shares": "0.3"}) == SlotMap()

    def test_zero_amounts_are_dropped_so_equal_resources_compare_equal(self) -> None:
        assert S(cpu=2, mem=0) == S(cpu=2)
        assert hash(S(cpu=2, mem=0)) == hash(S(cpu=2))

    @pytest.mark.parametrize(
        ("request_", "capacity", "fits"),
        [
            (S(cpu=4), S(cpu=4, mem="1g"), True),
            (S(cpu=5), S(cpu=4), False),
            (S({"cuda.device": 1}), S(cpu=64), False),
            (SlotMap(), SlotMap(), True),
        ],
    )
    def test_a_request_fits_when_every_slot_is_within_capacity(
        self, request_: SlotMap, capacity: SlotMap, fits: bool
    ) -> None:
        assert request_.fits(capacity) is fits
        assert (request_ <= capacity) is fits

    def test_scaling_multiplies_every_amount(self) -> None:
        assert S(cpu=2, mem="1g").scale(3) == S(cpu=6, mem="3g")
        assert 2 * S(cpu="0.5") == S(cpu=1)

    def test_exceeding_reports_only_the_slots_over_capacity(self) -> None:
        assert S(cpu=10, mem="1g").exceeding(S(cpu=4, mem="2g")) == S(cpu=6)

    def test_dominant_share_is_the_largest_fraction_of_capacity(self) -> None:
        capacity = S({"cpu": 100, "cuda.device": 10})
        assert S({"cpu": 10, "cuda.device": 5}).dominant_share(capacity) == Decimal("0.5")
        assert S({"tpu.device": 1}).dominant_share(capacity) == INFINITY

    def test_format_renders_memory_in_binary_units(self) -> None:
        assert S({"cpu": 4, "mem": "16g", "cuda.device": 2}).format() == (
            "cpu=4 cuda.device=2 mem=16 GiB"
        )


class TestSlotKinds:
    @pytest.mark.parametrize(
        ("name", "kind", "family"),
        [
            ("cpu", SlotKind.NODE, "cpu"),
            ("mem", SlotKind.NODE, "mem"),
            ("cuda.device", SlotKind.DEVICE, "cuda"),
            ("npu.furiosa.device", SlotKind.DEVICE, "npu.furiosa"),
            ("cuda.shares", SlotKind.SHARE, "cuda"),
            ("cuda.mem", SlotKind.SHARE, "cuda"),
        ],
    )
    def test_slot_names_map_to_a_kind_and_a_device_family(
        self, name: str, kind: SlotKind, family: str
    ) -> None:
        assert slot_kind(name) is kind
        assert slot_family(name) == family
