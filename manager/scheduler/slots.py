"""Exact resource-slot arithmetic.

A *slot map* is an immutable mapping from slot name to a `Decimal` amount. Requests, node
capacities, free capacity, quota limits and usage are all slot maps, so every comparison in the
scheduler is exact (no float rounding can let 0.1 + 0.2 shares over-commit a device).

Slot names and their kinds (see `slot_kind`):

- node-level slots have no dot: ``cpu`` (cores), ``mem`` (bytes), and any other plain name;
- whole-device slots end in ``.device``: ``cuda.device``, ``rocm.device``, ``tpu.device``,
  ``npu.<vendor>.device``; amounts are integral device counts;
- share slots are the other dotted names, e.g. ``cuda.shares`` or ``cuda.mem``; they belong to the
  device *family* before the last dot (``cuda``) and are carved out of one device.

A zero amount and an absent slot mean the same thing: zero entries are dropped, so two maps that
describe the same resources compare equal.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation

from manager.errors import InvalidRequest

ZERO = Decimal(0)
INFINITY = Decimal("Infinity")

# Binary multiples: accelerator and container memory is always sized in powers of two.
_UNIT_FACTORS = {
    "": 1,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "p": 2**50,
}
_AMOUNT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgtp]?)(?:i?b)?\s*$", re.I)
_PLAIN_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*$")

AmountLike = str | int | Decimal


class InvalidSlotValue(InvalidRequest):
    """A slot amount could not be parsed (not a number, negative, or a float)."""

    code = "invalid_slot_value"


class SlotKind(enum.Enum):
    NODE = "node"
    DEVICE = "device"
    SHARE = "share"


@functools.lru_cache(maxsize=1024)
def slot_kind(name: str) -> SlotKind:
    """Classify a slot name: plain names are node-level, ``*.device`` whole devices, other dotted
    names fractional shares of one device."""
    if "." not in name:
        return SlotKind.NODE
    if name.endswith(".device"):
        return SlotKind.DEVICE
    return SlotKind.SHARE


@functools.lru_cache(maxsize=1024)
def slot_family(name: str) -> str:
    """The device family of a dotted slot: ``cuda.device`` → ``cuda``,
    ``npu.furiosa.shares`` → ``npu.furiosa``; a node-level slot is its own family."""
    return name.rsplit(".", 1)[0]


def is_memory_slot(name: str) -> bool:
    """Memory-like slots accept unit suffixes ("4g", "512m") when parsed."""
    return name == "mem" or name.endswith(".mem")


def parse_amount(name: str, value: AmountLike) -> Decimal:
    """Parse one slot amount exactly.

    Accepts `int`, `Decimal` and strings; memory-like slots also accept binary unit suffixes
    (``k m g t p``, optionally followed by ``b``/``ib``: "4g", "512MiB", "1.5t"). Floats are
    refused because they cannot represent most fractions exactly.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidSlotValue(
            f"slot {name!r}: amount {value!r} must be an int, a Decimal or a string, not "
            f"{type(value).__name__}"
        )
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        amount = _parse_text(name, value)
    else:
        raise InvalidSlotValue(f"slot {name!r}: unsupported amount type {type(value).__name__}")
    if not amount.is_finite() or amount < 0:
        raise InvalidSlotValue(f"slot {name!r}: amount {value!r} must be finite and >= 0")
    return amount


def _parse_text(name: str, text: str) -> Decimal:
    pattern = _AMOUNT_RE if is_memory_slot(name) else _PLAIN_RE
    match = pattern.match(text)
    if match is None:
        hint = " (units k/m/g/t/p allowed)" if is_memory_slot(name) else ""
        raise InvalidSlotValue(f"slot {name!r}: cannot parse amount {text!r}{hint}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits valid numbers
        raise InvalidSlotValue(f"slot {name!r}: cannot parse amount {text!r}") from exc
    unit = match.group(2).lower() if pattern is _AMOUNT_RE else ""
    return number * _UNIT_FACTORS[unit]


class SlotMap(Mapping[str, Decimal]):
    """Immutable slot name → `Decimal` amount map with exact arithmetic.

    ``a + b`` and ``a - b`` combine slot-wise (missing slots count as zero; results may be
    negative after subtraction). ``a <= b`` / ``a.fits(b)`` is true when every amount of ``a`` is
    at most the same slot of ``b``. Hashable, so it can key dicts and sit in frozen dataclasses.
    """

    __slots__ = ("_data", "_hash")

    _data: dict[str, Decimal]
    _hash: int | None

    def __init__(self, data: Mapping[str, Decimal] | Iterable[tuple[str, Decimal]] = ()) -> None:
        items = data.items() if isinstance(data, Mapping) else data
        clean: dict[str, Decimal] = {}
        for key, value in items:
            if not isinstance(value, Decimal):
                raise TypeError(
                    f"SlotMap amounts must be Decimal (got {type(value).__name__} for {key!r}); "
                    "use SlotMap.parse for text and ints"
                )
            if value:
                clean[key] = value
        self._data = clean
        self._hash = None

    @classmethod
    def parse(cls, values: Mapping[str, AmountLike]) -> SlotMap:
        """Build a map from user-facing amounts: ``{"cpu": 4, "mem": "16g", "cuda.device": "2"}``.

        Raises `InvalidSlotValue` for anything that is not an exact, non-negative amount.
        """
        return cls._trusted(
            {name: amount for name, raw in values.items() if (amount := parse_amount(name, raw))}
        )

    @classmethod
    def _trusted(cls, clean: dict[str, Decimal]) -> SlotMap:
        # Hot-path constructor for dicts this module already built: Decimal values, no zeros.
        obj = cls.__new__(cls)
        obj._data = clean
        obj._hash = None
        return obj

    # -- Mapping protocol -------------------------------------------------------------------

    def __getitem__(self, key: str) -> Decimal:
        return self._data[key]

    def get(self, key: str, default: Decimal = ZERO) -> Decimal:  # type: ignore[override]
        return self._data.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SlotMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {str(v)!r}" for k, v in sorted(self._data.items()))
        return f"SlotMap({{{inner}}})"

    def __str__(self) -> str:
        return self.format()

    # -- arithmetic -------------------------------------------------------------------------

    def __add__(self, other: Mapping[str, Decimal]) -> SlotMap:
        out = dict(self._data)
        for key, value in other.items():
            total = out.get(key, ZERO) + value
            if total:
                out[key] = total
            else:
                out.pop(key, None)
        return SlotMap._trusted(out)

    def __sub__(self, other: Mapping[str, Decimal]) -> SlotMap:
        out = dict(self._data)
        for key, value in other.items():
            total = out.get(key, ZERO) - value
            if total:
                out[key] = total
            else:
                out.pop(key, None)
        return SlotMap._trusted(out)

    def __mul__(self, factor: int | Decimal) -> SlotMap:
        return self.scale(factor)

    __rmul__ = __mul__

    def scale(self, factor: int | Decimal) -> SlotMap:
        """Every amount multiplied by an exact factor (e.g. per-container request × replicas)."""
        if isinstance(factor, float):
            raise TypeError("scale factor must be int or Decimal, not float")
        return SlotMap._trusted({k: v * factor for k, v in self._data.items() if v * factor})

    def fits(self, capacity: Mapping[str, Decimal]) -> bool:
        """True when every amount here is at most the same slot in `capacity`."""
        for key, value in self._data.items():
            if value > capacity.get(key, ZERO):
                return False
        return True

    def __le__(self, other: Mapping[str, Decimal]) -> bool:
        return self.fits(other)

    def __ge__(self, other: Mapping[str, Decimal]) -> bool:
        return SlotMap(other).fits(self) if not isinstance(other, SlotMap) else other.fits(self)

    def exceeding(self, capacity: Mapping[str, Decimal]) -> SlotMap:
        """The part of each amount above `capacity` (only slots that do not fit)."""
        return SlotMap._trusted(
            {
                k: v - capacity.get(k, ZERO)
                for k, v in self._data.items()
                if v > capacity.get(k, ZERO)
            }
        )

    def elementwise_max(self, other: Mapping[str, Decimal]) -> SlotMap:
        out = dict(self._data)
        for key, value in other.items():
            if value > out.get(key, ZERO):
                out[key] = value
        return SlotMap._trusted({k: v for k, v in out.items() if v})

    def clamp_negative(self) -> SlotMap:
        """Negative amounts (an over-committed snapshot) read as zero."""
        return SlotMap._trusted({k: v for k, v in self._data.items() if v > 0})

    def only(self, names: Iterable[str]) -> SlotMap:
        wanted = set(names)
        return SlotMap._trusted({k: v for k, v in self._data.items() if k in wanted})

    def of_kind(self, kind: SlotKind) -> SlotMap:
        return SlotMap._trusted({k: v for k, v in self._data.items() if slot_kind(k) is kind})

    def dominant_share(self, capacity: Mapping[str, Decimal]) -> Decimal:
        """The largest fraction ``amount / capacity`` over all slots (DRF's dominant share).

        A positive amount of a slot the capacity lacks is an infinite share: no amount of that
        capacity can ever satisfy it.
        """
        share = ZERO
        for key, value in self._data.items():
            if value <= 0:
                continue
            cap = capacity.get(key, ZERO)
            if cap <= 0:
                return INFINITY
            ratio = value / cap
            if ratio > share:
                share = ratio
        return share

    def format(self) -> str:
        """Human form for messages: ``cpu=4 mem=16 GiB cuda.device=2`` (slots sorted)."""
        return " ".join(f"{k}={format_amount(k, v)}" for k, v in sorted(self._data.items()))


EMPTY = SlotMap()


def sum_slot_maps(maps: Iterable[Mapping[str, Decimal]]) -> SlotMap:
    out: dict[str, Decimal] = {}
    for slot_map in maps:
        for key, value in slot_map.items():
            out[key] = out.get(key, ZERO) + value
    return SlotMap._trusted({k: v for k, v in out.items() if v})


def format_amount(name: str, value: Decimal) -> str:
    """Render an amount for people: memory in the largest exact binary unit, else plain."""
    if is_memory_slot(name) and value == value.to_integral_value() and value != 0:
        for unit, label in (("p", "PiB"), ("t", "TiB"), ("g", "GiB"), ("m", "MiB"), ("k", "KiB")):
            factor = _UNIT_FACTORS[unit]
            if abs(value) >= factor:
                scaled = value / factor
                if scaled == scaled.to_integral_value():
                    return f"{int(scaled)} {label}"
                return f"{_plain(scaled.quantize(Decimal('0.01')))} {label}"
    return _plain(value)


def _plain(value: Decimal) -> str:
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")
