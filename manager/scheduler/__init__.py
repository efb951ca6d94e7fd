"""Berth's scheduler planner: pure code, no I/O.

Build a `Snapshot` from the database, call `schedule(snapshot, now=...)`, commit the returned
`Plan` with a guarded re-check. See docs/scheduler.md for the phases, policies and verdict codes.
"""

from manager.scheduler.backfill import Reservation, ReservedNode
from manager.scheduler.ordering import (
    DrfOrdering,
    FifoOrdering,
    OrderingContext,
    OrderingPolicy,
    PriorityOrdering,
    ordering_for,
)
from manager.scheduler.placement import (
    ArchitectureFilter,
    BinPackScorer,
    ImageFilter,
    NodeFilter,
    NodeScorer,
    NumaScorer,
    ResourceGroupFilter,
    SchedulableFilter,
    SpreadScorer,
)
from manager.scheduler.plan import Assignment, ContainerAssignment, Plan, schedule
from manager.scheduler.quota import SESSIONS_SLOT, QuotaViolation
from manager.scheduler.slots import (
    EMPTY,
    InvalidSlotValue,
    SlotKind,
    SlotMap,
    format_amount,
    parse_amount,
    slot_family,
    slot_kind,
    sum_slot_maps,
)
from manager.scheduler.snapshot import (
    DeviceState,
    DrfUsage,
    ExpectedRelease,
    Node,
    OrderingKind,
    PendingSession,
    PlacementKind,
    QuotaLimit,
    ResourceGroup,
    Scope,
    ScopeKind,
    ScopeUsage,
    Snapshot,
)
from manager.scheduler.verdicts import Verdict, VerdictCode

__all__ = [
    "EMPTY",
    "SESSIONS_SLOT",
    "ArchitectureFilter",
    "Assignment",
    "BinPackScorer",
    "ContainerAssignment",
    "DeviceState",
    "DrfOrdering",
    "DrfUsage",
    "ExpectedRelease",
    "FifoOrdering",
    "ImageFilter",
    "InvalidSlotValue",
    "Node",
    "NodeFilter",
    "NodeScorer",
    "NumaScorer",
    "OrderingContext",
    "OrderingKind",
    "OrderingPolicy",
    "PendingSession",
    "PlacementKind",
    "Plan",
    "PriorityOrdering",
    "QuotaLimit",
    "QuotaViolation",
    "Reservation",
    "ReservedNode",
    "ResourceGroup",
    "ResourceGroupFilter",
    "SchedulableFilter",
    "Scope",
    "ScopeKind",
    "ScopeUsage",
    "SlotKind",
    "SlotMap",
    "Snapshot",
    "SpreadScorer",
    "Verdict",
    "VerdictCode",
    "format_amount",
    "ordering_for",
    "parse_amount",
    "schedule",
    "slot_family",
    "slot_kind",
    "sum_slot_maps",
]
