"""Node selection: filters, scorers and the free-capacity index that keeps the search fast.

Filters answer "may this session run on this node at all?" (resource group, architecture,
cordon, image); each is one method returning a rejection reason or None. Scorers rank nodes
that passed the filters and fit (bin-pack, spread, NUMA locality); each is one method returning
a float, higher is better, combined by `WeightedScorer`.

Instead of testing every node for every session, the planner files nodes of one
(resource group, architecture) in a `CandidateIndex`: one sorted list per slot of the free
amount on each node. A request first checks the largest free amount of every slot it needs
(a session that fits nowhere is rejected without touching a node), then walks the list of its
*primary* slot (its accelerator, else cpu) from the best-fitting end: ascending for bin-pack,
descending for spread. The first `max_scored` nodes that pass the filters and fit are scored;
the best wins. This bounds the work per placement no matter how many nodes the group has.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from manager.scheduler.fit import ContainerDemand, NodeFit, NodeState, fit_node
from manager.scheduler.slots import ZERO, SlotKind, slot_kind
from manager.scheduler.snapshot import Node, PendingSession, PlacementKind

# Scoring more nodes than this buys almost nothing: the index already walks nodes in the
# strategy's preferred order, so later candidates are worse fits by the primary slot.
DEFAULT_MAX_SCORED = 4


class NodeFilter(Protocol):
    def reject(self, node: Node, session: PendingSession) -> str | None:
        """Why `session` may never run on `node`, or None when it may. Pure."""
        ...


class ResourceGroupFilter:
    def reject(self, node: Node, session: PendingSession) -> str | None:
        if node.resource_group != session.resource_group:
            return f"node is in resource group {node.resource_group!r}"
        return None


class SchedulableFilter:
    def reject(self, node: Node, session: PendingSession) -> str | None:
        return None if node.schedulable else "node is cordoned"


class ArchitectureFilter:
    def reject(self, node: Node, session: PendingSession) -> str | None:
        if node.architecture != session.architecture:
            return f"architecture {node.architecture} is not {session.architecture}"
        return None


class ImageFilter:
    def reject(self, node: Node, session: PendingSession) -> str | None:
        if node.can_pull_images or session.image in node.images:
            return None
        return f"image {session.image} is not present and the node cannot pull images"


# The index is keyed by (resource group, architecture) and holds only schedulable nodes, so
# these filters hold by construction for every indexed candidate; they still run when the
# planner explains why no node is compatible.
INDEX_FILTERS: tuple[NodeFilter, ...] = (
    ResourceGroupFilter(),
    SchedulableFilter(),
    ArchitectureFilter(),
)
CANDIDATE_FILTERS: tuple[NodeFilter, ...] = (ImageFilter(),)
ALL_FILTERS: tuple[NodeFilter, ...] = INDEX_FILTERS + CANDIDATE_FILTERS


class NodeScorer(Protocol):
    def score(self, state: NodeState, fit: NodeFit) -> float:
        """How good placing `fit` on `state` is; higher is better. Pure."""
        ...


class BinPackScorer:
    """Prefer the node that will be fullest afterwards in the slots the request uses, so large
    requests still find empty nodes later (the default, and the right one for accelerators)."""

    def score(self, state: NodeState, fit: NodeFit) -> float:
        return _utilisation_after(state, fit)


class SpreadScorer:
    """Prefer the emptiest node: fewer neighbours, less contention."""

    def score(self, state: NodeState, fit: NodeFit) -> float:
        return 1.0 - _utilisation_after(state, fit)


class NumaScorer:
    """Prefer placements whose devices sit on one NUMA node per container."""

    def score(self, state: NodeState, fit: NodeFit) -> float:
        span = fit.numa_span
        return 1.0 if span <= 1 else 1.0 / span


@dataclass(frozen=True, slots=True)
class WeightedScorer:
    parts: tuple[tuple[float, NodeScorer], ...]

    def score(self, state: NodeState, fit: NodeFit) -> float:
        return sum(weight * part.score(state, fit) for weight, part in self.parts)


def scorer_for(kind: PlacementKind) -> WeightedScorer:
    """Strategy score plus NUMA locality, equally weighted: a placement on one NUMA node beats a
    slightly tighter pack across two."""
    strategy: NodeScorer = BinPackScorer() if kind is PlacementKind.BINPACK else SpreadScorer()
    return WeightedScorer(parts=((1.0, strategy), (1.0, NumaScorer())))


def _utilisation_after(state: NodeState, fit: NodeFit) -> float:
    total = state.node.total
    used: list[float] = []
    for slot, amount in fit.node_slots.items():
        capacity = total.get(slot, ZERO)
        if capacity > 0:
            after = capacity - state.free.get(slot, ZERO) + amount
            used.append(float(after / capacity))
    whole: dict[str, int] = {}
    for container in fit.containers:
        for slot, devices in container.whole.items():
            whole[slot] = whole.get(slot, 0) + len(devices)
    for slot, count in whole.items():
        capacity = total.get(slot, ZERO)
        if capacity > 0:
            after = capacity - state.index_values.get(slot, ZERO) + count
            used.append(float(after / capacity))
    return sum(used) / len(used) if used else 0.0


class CandidateIndex:
    """Schedulable nodes of one (resource group, architecture), filed by free capacity."""

    def __init__(self, states: Sequence[NodeState]) -> None:
        self.states = {state.order: state for state in states}
        self.images: frozenset[str] = frozenset().union(*(s.node.images for s in states))
        self.any_pull = any(s.node.can_pull_images for s in states)
        self._lists: dict[str, list[tuple[Decimal, int]]] = {}
        self._totals: dict[str, Decimal] = {}
        # Largest capacity per slot on any node when empty: requests above it never fit.
        self.largest_total: dict[str, Decimal] = {}
        for state in states:
            values = state.compute_index_values()
            state.index_values = values
            for key, value in values.items():
                self._lists.setdefault(key, []).append((value, state.order))
                self._totals[key] = self._totals.get(key, ZERO) + value
            for slot, amount in state.node.total.items():
                # A share request must fit one device: only device capacities count for it.
                if slot_kind(slot) is SlotKind.SHARE:
                    continue
                if amount > self.largest_total.get(slot, ZERO):
                    self.largest_total[slot] = amount
            for device in state.node.devices:
                for slot, amount in device.capacity.items():
                    if amount > self.largest_total.get(slot, ZERO):
                        self.largest_total[slot] = amount
        for entries in self._lists.values():
            entries.sort()

    def __len__(self) -> int:
        return len(self.states)

    def accepts_image(self, image: str) -> bool:
        return self.any_pull or image in self.images

    def update(self, state: NodeState) -> None:
        """Refile `state` after its free capacity changed."""
        values = state.compute_index_values()
        old = state.index_values
        for key in old.keys() | values.keys():
            before = old.get(key, ZERO)
            after = values.get(key, ZERO)
            if before == after:
                continue
            entries = self._lists.setdefault(key, [])
            position = bisect.bisect_left(entries, (before, state.order))
            if position < len(entries) and entries[position] == (before, state.order):
                del entries[position]
            bisect.insort(entries, (after, state.order))
            self._totals[key] = self._totals.get(key, ZERO) - before + after
        state.index_values = values

    def largest_free(self, key: str) -> Decimal:
        entries = self._lists.get(key)
        return entries[-1][0] if entries else ZERO

    def total_free(self, key: str) -> Decimal:
        return self._totals.get(key, ZERO)

    def walk(self, key: str, minimum: Decimal, *, descending: bool) -> Iterator[NodeState]:
        """Nodes whose free `key` is at least `minimum`, tightest first (or loosest first)."""
        entries = self._lists.get(key, [])
        start = bisect.bisect_left(entries, (minimum, -1))
        if descending:
            for position in range(len(entries) - 1, start - 1, -1):
                yield self.states[entries[position][1]]
        else:
            for position in range(start, len(entries)):
                yield self.states[entries[position][1]]


def requirements(demands: Sequence[ContainerDemand]) -> dict[str, Decimal]:
    """The index value each slot needs on a single node for `demands` placed together: summed
    node-level amounts and device counts; for share slots the largest single-device amount."""
    needs: dict[str, Decimal] = {}
    for demand in demands:
        for slot, amount in demand.node.items():
            needs[slot] = needs.get(slot, ZERO) + amount
        for slot, count in demand.whole.items():
            needs[slot] = needs.get(slot, ZERO) + count
        for amounts in demand.shares.values():
            for slot, amount in amounts.items():
                if amount > needs.get(slot, ZERO):
                    needs[slot] = amount
    return {slot: amount for slot, amount in needs.items() if amount > 0}


def primary_slot(needs: dict[str, Decimal]) -> str | None:
    """The slot whose list the search walks: the scarcest kind the request needs."""
    best: tuple[int, Decimal, str] | None = None
    for slot, amount in needs.items():
        kind = slot_kind(slot)
        rank = 0 if kind is SlotKind.DEVICE else 1 if kind is SlotKind.SHARE else 2
        if slot == "cpu":
            rank = 2
        elif kind is SlotKind.NODE:
            rank = 3
        key = (rank, -amount, slot)
        if best is None or key < best:
            best = key
    return best[2] if best is not None else None


def find_node(
    index: CandidateIndex,
    session: PendingSession,
    demands: Sequence[ContainerDemand],
    *,
    scorer: NodeScorer,
    descending: bool,
    max_scored: int = DEFAULT_MAX_SCORED,
    needs: dict[str, Decimal] | None = None,
) -> tuple[NodeState, NodeFit] | None:
    """The best node for `demands` placed together, with its device fit, or None."""
    if needs is None:
        needs = requirements(demands)
    for slot, amount in needs.items():
        if amount > index.largest_free(slot):
            return None
    primary = primary_slot(needs)
    if primary is None:
        return None
    best: tuple[float, NodeState, NodeFit] | None = None
    found = 0
    for state in index.walk(primary, needs[primary], descending=descending):
        if any(f.reject(state.node, session) for f in CANDIDATE_FILTERS):
            continue
        fit = fit_node(state, demands)
        if fit is None:
            continue
        score = scorer.score(state, fit)
        if best is None or score > best[0]:
            best = (score, state, fit)
        found += 1
        if found >= max_scored:
            break
    if best is None:
        return None
    return best[1], best[2]
