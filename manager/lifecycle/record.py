"""The one function that changes a session's status, and the hand-over that also frees the row
for the loop that owns the new status."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from manager.db.models.sessions import SessionHistoryRow, SessionRow
from manager.lifecycle.session import (
    TERMINAL,
    SessionStatus,
    check_transition,
    outcome_of,
)

log = logging.getLogger("berth.manager.lifecycle")


def transition(
    db: AsyncSession,
    session: SessionRow,
    target: SessionStatus,
    *,
    reason: str,
    now: datetime,
    message: str = "",
) -> None:
    """Validate `session.status → target` against the table and record it in `db`'s transaction.

    The caller holds the row (locked or lease-guarded) and commits; nothing else writes
    `status`. Raises Conflict(invalid_transition) for a move the table does not allow.
    """
    check_transition(session.status, target)
    previous = session.status
    session.status = target
    session.status_reason = reason
    session.status_message = message[:2000]
    session.status_changed_at = now
    session.next_attempt_at = None  # a retry delay belongs to the status that set it
    if target is SessionStatus.SCHEDULED:
        session.scheduled_at = now
        session.pending_verdict = None
    elif target is SessionStatus.RUNNING:
        session.started_at = session.started_at or now
    elif target is SessionStatus.PENDING:
        session.waiting_since = now
        session.scheduled_at = None
    if target in TERMINAL:
        session.terminated_at = now
        session.pending_verdict = None
        if session.result is None:
            session.result = outcome_of(reason).result
    db.add(
        SessionHistoryRow(
            session_id=session.id, status=target, reason=reason, message=message[:2000], at=now
        )
    )
    log.info(
        "session transition",
        extra={
            "session_id": str(session.id),
            "from": previous.value,
            "to": target.value,
            "reason": reason,
        },
    )


def release_lease(session: SessionRow) -> None:
    """Drop whatever loop lease the row carries, so any manager may pick it up at once."""
    session.lease_token = None
    session.lease_owner = None
    session.lease_expires_at = None


def hand_over(
    db: AsyncSession,
    session: SessionRow,
    target: SessionStatus,
    *,
    reason: str,
    now: datetime,
    message: str = "",
) -> None:
    """`transition`, then release the lease: a lease belongs to the loop working on the old
    status (dispatching, say); kept, it would make the loop for the new status (terminate)
    wait for it to expire."""
    transition(db, session, target, reason=reason, now=now, message=message)
    release_lease(session)
