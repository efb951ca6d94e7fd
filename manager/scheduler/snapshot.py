"""The immutable input of one scheduling cycle.

The snapshot builder (in the manager's schedule reconciler) reads Postgres once and fills these
frozen dataclasses; `schedule()` never sees a database row. Everything is plain data: ids are
strings, amounts are `SlotMap`s, times are timezone-aware UTC datetimes.

Conventions the builder must follow:

- `Node.free` holds only node-level slots (``cpu``, ``mem``, other undotted names). Free
  accelerator capacity is described device by device in `Node.devices`, so the planner can see
  fragmentation; `Node.total` holds every slot, device slots included (``cuda.device: 8``).
- Every device of a node is listed, busy ones too (``whole_free=False``, ``free`` empty):
  reservations reason about a node once its running sessions end.
- Quota limits list only limited slots; a slot absent from `QuotaLimit.slots` is unlimited,
  a slot listed with 0 is forbidden.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from manager.scheduler.slots import EMPTY, AmountLike, SlotMap, parse_amount, sum_slot_maps


class ScopeKind(enum.StrEnum):
    DOMAIN = "domain"
    PROJECT = "project"
    USER = "user"
    USER_IN_PROJECT = "user_in_project"


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """A quota scope. For ``user_in_project`` the id is ``"<project_id>/<user_id>"``."""

    kind: ScopeKind
    id: str

    @classmethod
    def domain(cls, domain_id: str) -> Scope:
        return cls(ScopeKind.DOMAIN, domain_id)

    @classmethod
    def project(cls, project_id: str) -> Scope:
        return cls(ScopeKind.PROJECT, project_id)

    @classmethod
    def user(cls, user_id: str) -> Scope:
        return cls(ScopeKind.USER, user_id)

    @classmethod
    def user_in_project(cls, project_id: str, user_id: str) -> Scope:
        return cls(ScopeKind.USER_IN_PROJECT, f"{project_id}/{user_id}")

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    """Limits of one scope. `slots` caps the total of running + scheduled sessions' requests;
    `max_sessions` caps how many sessions may hold resources at once (None: unlimited).

    `slots` is a plain mapping rather than a `SlotMap` because a zero limit is meaningful
    ("no GPUs for this project") while an absent slot is unlimited; a `SlotMap` would drop the
    zero. Build it from user input with `QuotaLimit.parse`.
    """

    slots: Mapping[str, Decimal] = field(default_factory=dict)
    max_sessions: int | None = None

    @classmethod
    def parse(
        cls, values: Mapping[str, AmountLike], *, max_sessions: int | None = None
    ) -> QuotaLimit:
        return cls(
            slots={name: parse_amount(name, raw) for name, raw in values.items()},
            max_sessions=max_sessions,
        )


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """What a scope holds now: the summed requests of its sessions that occupy resources
    (scheduled, preparing, running, terminating) and how many such sessions there are."""

    slots: SlotMap = EMPTY
    sessions: int = 0


class OrderingKind(enum.StrEnum):
    FIFO = "fifo"
    PRIORITY = "priority"
    DRF = "drf"


class PlacementKind(enum.StrEnum):
    BINPACK = "binpack"
    SPREAD = "spread"


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    """A partition of nodes with its own queue policy.

    `allowed_projects` None means every project may use the group. `backfill_wait_threshold_s`
    None disables reservations: a head that does not fit never holds resources for itself.
    `max_reservations` bounds how many overdue sessions may hold reservations at once, so a long
    queue of large sessions cannot drain the whole group.
    """

    name: str
    allowed_projects: frozenset[str] | None = None
    ordering: OrderingKind = OrderingKind.FIFO
    placement: PlacementKind = PlacementKind.BINPACK
    backfill_wait_threshold_s: float | None = None
    max_reservations: int = 1


@dataclass(frozen=True, slots=True)
class PendingSession:
    """A session waiting to be placed.

    `containers` holds one request per container (at least one). A single-node session puts all
    containers on one node; a `multi_node` session may spread them over several nodes, but is
    still placed all-or-nothing. `waiting_since` is when the session last entered the queue
    (defaults to `created_at`); backfill reservations use it, FIFO order uses `created_at`.
    Higher `priority` goes first under the ``priority`` policy.
    """

    session_id: str
    created_at: datetime
    resource_group: str
    domain_id: str
    project_id: str
    user_id: str
    containers: tuple[SlotMap, ...]
    image: str
    architecture: str
    priority: int = 0
    multi_node: bool = False
    waiting_since: datetime | None = None
    requested: SlotMap = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requested", sum_slot_maps(self.containers))

    def waited_s(self, now: datetime) -> float:
        since = self.waiting_since if self.waiting_since is not None else self.created_at
        return (now - since).total_seconds()

    def scopes(self) -> tuple[Scope, ...]:
        """Every quota scope this session counts against, innermost first."""
        return (
            Scope.user_in_project(self.project_id, self.user_id),
            Scope.user(self.user_id),
            Scope.project(self.project_id),
            Scope.domain(self.domain_id),
        )


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One accelerator on a node.

    `slot` is the whole-device slot (``cuda.device``). `whole_free` says nothing holds any part of
    the device, so it can be given away whole. `capacity` and `free` hold the device's share
    slots (``cuda.shares``, ``cuda.mem``) for plugins that share devices; both are empty for
    plugins that only hand out whole devices. A whole-free device should have
    ``free == capacity``.
    """

    device_id: str
    slot: str
    whole_free: bool
    numa_node: int | None = None
    capacity: SlotMap = EMPTY
    free: SlotMap = EMPTY

    @property
    def family(self) -> str:
        return self.slot.rsplit(".", 1)[0]


@dataclass(frozen=True, slots=True)
class ExpectedRelease:
    """Resources a running session on the node will give back, and when (if known).

    `ends_at` comes from a batch timeout or maximum lifetime; None means "no known end", which
    the planner treats as later than any known time. `slots` holds node-level slots only;
    `device_ids` the whole devices it holds; `device_shares` its share amounts per device id.
    """

    session_id: str
    ends_at: datetime | None
    slots: SlotMap = EMPTY
    device_ids: tuple[str, ...] = ()
    device_shares: Mapping[str, SlotMap] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Node:
    """A schedulable machine (one agent). `schedulable=False` means cordoned.

    `images` are present locally; a node with `can_pull_images` accepts any image.
    `releases` lists running sessions with their expected end, for backfill reservations.
    """

    node_id: str
    resource_group: str
    architecture: str
    total: SlotMap
    free: SlotMap
    devices: tuple[DeviceState, ...] = ()
    images: frozenset[str] = frozenset()
    schedulable: bool = True
    can_pull_images: bool = False
    releases: tuple[ExpectedRelease, ...] = ()


@dataclass(frozen=True, slots=True)
class DrfUsage:
    """Resources currently held in one resource group, per user and per project (DRF input)."""

    users: Mapping[str, SlotMap] = field(default_factory=dict)
    projects: Mapping[str, SlotMap] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one cycle may read. `drf_usage` is keyed by resource group name."""

    pending: tuple[PendingSession, ...]
    nodes: tuple[Node, ...]
    resource_groups: Mapping[str, ResourceGroup]
    quotas: Mapping[Scope, QuotaLimit] = field(default_factory=dict)
    usage: Mapping[Scope, ScopeUsage] = field(default_factory=dict)
    drf_usage: Mapping[str, DrfUsage] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_unique("session id", [s.session_id for s in self.pending])
        _require_unique("node id", [n.node_id for n in self.nodes])
        for name, group in self.resource_groups.items():
            if name != group.name:
                raise ValueError(f"resource group keyed {name!r} is named {group.name!r}")


def _require_unique(what: str, ids: list[str]) -> None:
    if len(set(ids)) != len(ids):
        dupes = sorted(i for i, n in Counter(ids).items() if n > 1)
        raise ValueError(f"duplicate {what}s in snapshot: {', '.join(dupes)}")
