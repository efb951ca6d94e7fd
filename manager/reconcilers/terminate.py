"""Terminate: sessions in `terminating` → containers destroyed → resources released once →
the terminal status their reason decides (terminated, cancelled or error).

Destroy is idempotent on the agent, so a crash between the calls and the apply only repeats
harmless deletes. A container on a lost node cannot be destroyed now; the session still ends,
and the reaper destroys the container as an orphan if the node comes back."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select

from manager.clients.agent import AgentError
from manager.db.models import AgentRow, AgentStatus, SessionContainerRow
from manager.lifecycle.record import release_lease, transition
from manager.lifecycle.session import SessionStatus, outcome_of
from manager.reconcilers.base import Leased, lease_sessions, load_leased
from manager.reconcilers.context import LoopContext
from manager.services.ledger import release_session

log = logging.getLogger("berth.manager.terminate")

LEASE_S = 60.0
LOG_TAIL_BYTES = 1024 * 1024  # kept per container after it is destroyed
BATCH = 32
# After this long in `terminating`, a node that keeps refusing the destroy no longer holds the
# session hostage: it ends, and the reaper destroys the container as an orphan later.
GIVE_UP_AFTER_S = 600.0
RETRY_S = 2.0


async def terminate_step(ctx: LoopContext) -> bool:
    leased = await lease_sessions(
        ctx.db_factory,
        statuses=[SessionStatus.TERMINATING],
        owner=ctx.owner,
        now=ctx.clock(),
        lease_s=LEASE_S,
        limit=BATCH,
    )
    if not leased:
        return False
    await asyncio.gather(*(terminate_one(ctx, item) for item in leased))
    ctx.wake("schedule")  # freed resources may let queued sessions start
    return True


async def terminate_one(ctx: LoopContext, leased: Leased) -> None:
    async with ctx.db_factory() as db, db.begin():
        session = await load_leased(db, leased)
        if session is None or session.status is not SessionStatus.TERMINATING:
            return
        rows = (
            await db.execute(
                select(SessionContainerRow.id, AgentRow.advertised_url, AgentRow.status)
                .join(AgentRow, AgentRow.id == SessionContainerRow.node_id)
                .where(
                    SessionContainerRow.session_id == session.id,
                    SessionContainerRow.state != "destroyed",
                    # Containers of earlier attempts were already released (lost node); if
                    # they still run somewhere, the reaper destroys them as orphans.
                    SessionContainerRow.released_at.is_(None),
                )
            )
        ).all()
    targets = [(cid, url) for cid, url, status in rows if status is AgentStatus.ALIVE]
    tails = await asyncio.gather(*(_log_tail(ctx, url, cid) for cid, url in targets))
    results = await asyncio.gather(
        *(ctx.agent(url).destroy_container(cid) for cid, url in targets), return_exceptions=True
    )
    failed = [
        (cid, r)
        for (cid, _), r in zip(targets, results, strict=True)
        if isinstance(r, BaseException)
    ]
    now = ctx.clock()
    async with ctx.db_factory() as db, db.begin():
        session = await load_leased(db, leased)
        if session is None or session.status is not SessionStatus.TERMINATING:
            return
        stuck_s = (now - session.status_changed_at).total_seconds()
        if failed and stuck_s < GIVE_UP_AFTER_S:
            # Retry the failed destroys soon (any manager may); they are idempotent.
            cid, err = failed[0]
            session.status_message = f"could not destroy {cid} yet: {_describe(err)}"
            session.next_attempt_at = now + timedelta(seconds=RETRY_S)
            release_lease(session)
            log.warning("destroy failed", extra={"session_id": str(session.id), "error": str(err)})
            return
        failed_ids = {cid for cid, _ in failed}
        destroyed = {cid for cid, _ in targets} - failed_ids
        tail_of = {cid: tail for (cid, _), tail in zip(targets, tails, strict=True) if tail}
        for container in (
            await db.scalars(
                select(SessionContainerRow).where(SessionContainerRow.session_id == session.id)
            )
        ).all():
            if container.id in tail_of:
                container.log_tail = tail_of[container.id]
            if container.id in destroyed:
                container.state = "destroyed"
            elif container.state != "destroyed":
                container.state = "lost"
            container.finished_at = container.finished_at or now
        await release_session(db, session_id=session.id, now=now)
        outcome = outcome_of(session.status_reason)
        if outcome.result is not None and session.result is None:
            session.result = outcome.result
        transition(
            db,
            session,
            outcome.status,
            reason=session.status_reason,
            now=now,
            message=session.status_message,
        )
        release_lease(session)


async def _log_tail(ctx: LoopContext, url: str, container_id: str) -> str | None:
    """The last LOG_TAIL_BYTES of output, read before the container (and its log) goes away."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in ctx.agent(url).logs(container_id, follow=False):
            chunks.append(chunk)
            size += len(chunk)
            while size - len(chunks[0]) > LOG_TAIL_BYTES:
                size -= len(chunks.pop(0))
    except AgentError:
        return None
    data = b"".join(chunks)[-LOG_TAIL_BYTES:]
    return data.decode("utf-8", errors="replace") if data else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return f"{exc.code}: {exc.message}"
    return repr(exc)
