"""Deadlines that keep sessions from getting stuck: a session preparing too long, and running
sessions past their maximum duration (batch timeout and maximum lifetime alike), move to
terminating with the reason. Idle culling lives in idle.py."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select

from manager.db.models import SessionRow
from manager.lifecycle.record import hand_over
from manager.lifecycle.session import Reason, SessionStatus, SessionType
from manager.reconcilers.context import LoopContext

PREPARING_TIMEOUT_S = 600.0  # pulling nothing (images are local), so ten minutes is generous
BATCH = 200


async def timeouts_step(ctx: LoopContext) -> bool:
    now = ctx.clock()
    ended = 0
    async with ctx.db_factory() as db, db.begin():
        overdue = (
            await db.scalars(
                select(SessionRow)
                .where(
                    or_(
                        and_(
                            SessionRow.status == SessionStatus.PREPARING,
                            SessionRow.status_changed_at
                            < now - timedelta(seconds=PREPARING_TIMEOUT_S),
                        ),
                        and_(
                            SessionRow.status == SessionStatus.RUNNING,
                            SessionRow.max_duration_s.is_not(None),
                            SessionRow.started_at
                            + func.make_interval(0, 0, 0, 0, 0, 0, SessionRow.max_duration_s)
                            < now,
                        ),
                    )
                )
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for session in overdue:
            if session.status is SessionStatus.PREPARING:
                reason, message = Reason.PREPARING_TIMEOUT, "containers did not start in time"
            elif session.type is SessionType.BATCH:
                reason = Reason.BATCH_TIMEOUT
                message = f"ran longer than its limit of {session.max_duration_s}s"
            else:
                reason = Reason.MAX_LIFETIME
                message = f"reached its maximum lifetime of {session.max_duration_s}s"
            hand_over(
                db, session, SessionStatus.TERMINATING, reason=reason, now=now, message=message
            )
            ended += 1
    if ended:
        ctx.wake("terminate")
    return ended == BATCH
