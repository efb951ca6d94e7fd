"""The session lifecycle, written as data.

    pending ──▶ scheduled ──▶ preparing ──▶ running ──▶ terminating ──▶ terminated
       │            │             │            │              │
       ├──▶ cancelled            ├──▶ pending (batch retry after a lost node / failed start)
       └──────┴─────────────┴────────────┴──────────────┴──▶ error

1. `pending`: queued; the schedule loop owns it; the planner writes why it waits.
2. `scheduled`: resources committed on nodes; the dispatch loop owns it (deadline: lease).
3. `preparing`: the dispatch loop is creating containers (deadline: PREPARING_TIMEOUT_S).
4. `running`: every container started; container events and heartbeats own it; lifetime, batch
   timeout and idle reconcilers watch it.
5. `terminating`: containers are being destroyed; the terminate loop owns it.
6. `terminated` / `cancelled` / `error`: terminal; resources were released exactly once.

Every change goes through `transition()`, which validates against TRANSITIONS and records
(status, reason, timestamp) in the same transaction. The reason decides terminal statuses.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import datetime

from manager.errors import Conflict

log = logging.getLogger("berth.manager.lifecycle")


class SessionType(enum.StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"
    INFERENCE = "inference"


class SessionStatus(enum.StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PREPARING = "preparing"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    CANCELLED = "cancelled"
    ERROR = "error"


class SessionResult(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


S = SessionStatus

TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    S.PENDING: frozenset({S.SCHEDULED, S.CANCELLED, S.ERROR}),
    S.SCHEDULED: frozenset({S.PREPARING, S.TERMINATING, S.PENDING, S.ERROR}),
    S.PREPARING: frozenset({S.RUNNING, S.TERMINATING, S.PENDING, S.ERROR}),
    S.RUNNING: frozenset({S.TERMINATING, S.PENDING, S.ERROR}),
    S.TERMINATING: frozenset({S.TERMINATED, S.ERROR}),
    S.TERMINATED: frozenset(),
    S.CANCELLED: frozenset(),
    S.ERROR: frozenset(),
}

TERMINAL = frozenset({S.TERMINATED, S.CANCELLED, S.ERROR})
ACTIVE = frozenset(set(SessionStatus) - TERMINAL)
# Statuses in which the session holds committed resources on nodes and in quotas.
OCCUPYING = frozenset({S.SCHEDULED, S.PREPARING, S.RUNNING, S.TERMINATING})
# Statuses the dispatch and terminate loops lease.
LEASED = frozenset({S.SCHEDULED, S.PREPARING, S.TERMINATING})


class Reason(enum.StrEnum):
    """Why a session moved. Terminal reasons decide the terminal status and result."""

    CREATED = "created"
    PLACED = "placed"
    DISPATCHING = "dispatching"
    STARTED = "started"
    USER_CANCELLED = "user_cancelled"
    USER_TERMINATED = "user_terminated"
    EXIT_SUCCESS = "exit_success"
    EXIT_FAILURE = "exit_failure"
    OOM_KILLED = "oom_killed"
    BATCH_TIMEOUT = "batch_timeout"
    MAX_LIFETIME = "max_lifetime"
    IDLE_TIMEOUT = "idle_timeout"
    PREPARING_TIMEOUT = "preparing_timeout"
    DISPATCH_FAILED = "dispatch_failed"
    IMAGE_NOT_FOUND = "image_not_found"
    NODE_LOST = "node_lost"
    RETRY = "retry"
    CLEANED_UP = "cleaned_up"


@dataclass(frozen=True)
class Outcome:
    """How a reason ends a session once its containers are gone."""

    status: SessionStatus
    result: SessionResult | None


OUTCOMES: dict[Reason, Outcome] = {
    Reason.USER_CANCELLED: Outcome(S.CANCELLED, None),
    Reason.USER_TERMINATED: Outcome(S.TERMINATED, None),
    Reason.EXIT_SUCCESS: Outcome(S.TERMINATED, SessionResult.SUCCESS),
    Reason.EXIT_FAILURE: Outcome(S.TERMINATED, SessionResult.FAILURE),
    Reason.OOM_KILLED: Outcome(S.TERMINATED, SessionResult.FAILURE),
    Reason.BATCH_TIMEOUT: Outcome(S.TERMINATED, SessionResult.FAILURE),
    Reason.MAX_LIFETIME: Outcome(S.TERMINATED, None),
    Reason.IDLE_TIMEOUT: Outcome(S.TERMINATED, None),
    Reason.PREPARING_TIMEOUT: Outcome(S.ERROR, SessionResult.FAILURE),
    Reason.DISPATCH_FAILED: Outcome(S.ERROR, SessionResult.FAILURE),
    Reason.IMAGE_NOT_FOUND: Outcome(S.ERROR, SessionResult.FAILURE),
    Reason.NODE_LOST: Outcome(S.ERROR, SessionResult.FAILURE),
}

# Reasons that are the infrastructure's fault, not the job's (the CLI exits with a distinct code).
INFRASTRUCTURE_REASONS = frozenset(
    {
        Reason.PREPARING_TIMEOUT,
        Reason.DISPATCH_FAILED,
        Reason.IMAGE_NOT_FOUND,
        Reason.NODE_LOST,
    }
)


def outcome_of(reason: str) -> Outcome:
    try:
        return OUTCOMES[Reason(reason)]
    except (ValueError, KeyError):
        return Outcome(S.TERMINATED, None)


def can_transition(current: SessionStatus, target: SessionStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(current: SessionStatus, target: SessionStatus) -> None:
    if not can_transition(current, target):
        raise Conflict(
            f"session cannot go from {current.value} to {target.value}",
            code="invalid_transition",
        )


@dataclass(frozen=True)
class Change:
    """One validated status change, recorded by the caller's transaction."""

    status: SessionStatus
    reason: str
    message: str
    at: datetime
