"""Node health: heartbeats that stop mark a node lost; its sessions are marked lost (batch
sessions with retries left go back to the queue); resources are freed exactly once. Orphan
containers that nodes report (no live allocation) are destroyed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.db.models import AgentRow, AgentStatus, SessionContainerRow, SessionRow
from manager.lifecycle.record import release_lease, transition
from manager.lifecycle.session import OCCUPYING, Reason, SessionStatus, SessionType
from manager.reconcilers.context import LoopContext
from manager.services.agents import mark_lost_agents
from manager.services.ledger import release_session

log = logging.getLogger("berth.manager.nodes")


async def liveness_step(ctx: LoopContext) -> bool:
    now = ctx.clock()
    async with ctx.db_factory() as db, db.begin():
        lost = await mark_lost_agents(db, now=now, lost_after_s=ctx.config.agent_lost_after_s)
        lost_nodes = set(
            (
                await db.scalars(select(AgentRow.id).where(AgentRow.status == AgentStatus.LOST))
            ).all()
        )
        if not lost_nodes:
            return False
        session_ids = sorted(
            set(
                (
                    await db.scalars(
                        select(SessionContainerRow.session_id).where(
                            SessionContainerRow.node_id.in_(lost_nodes),
                            SessionContainerRow.released_at.is_(None),
                        )
                    )
                ).all()
            )
        )
    requeued = 0
    for session_id in session_ids:
        # One transaction per session keeps the ledger's lock order (agents, then scopes).
        async with ctx.db_factory() as db, db.begin():
            requeued += await _session_lost(
                db, session_id=session_id, lost_nodes=lost_nodes, now=now
            )
    if lost:
        log.warning("nodes lost", extra={"nodes": lost, "sessions": len(session_ids)})
    if requeued:
        ctx.wake("schedule")
    return False


async def _session_lost(
    db: AsyncSession, *, session_id: uuid.UUID, lost_nodes: set[str], now: datetime
) -> int:
    """Free a session that had containers on a lost node; requeue a batch with retries left.
    Returns 1 when requeued."""
    session = await db.scalar(
        select(SessionRow).where(SessionRow.id == session_id).with_for_update()
    )
    if session is None or session.status not in OCCUPYING:
        return 0
    for container in (
        await db.scalars(
            select(SessionContainerRow).where(
                SessionContainerRow.session_id == session.id,
                SessionContainerRow.released_at.is_(None),
            )
        )
    ).all():
        if container.node_id in lost_nodes:
            container.state = "lost"
            container.finished_at = now
    await release_session(db, session_id=session.id, now=now)
    release_lease(session)
    if (
        session.type is SessionType.BATCH
        and session.attempt <= session.max_retries
        and session.status is not SessionStatus.TERMINATING
    ):
        transition(
            db,
            session,
            SessionStatus.PENDING,
            reason=Reason.RETRY,
            now=now,
            message=f"node lost; retry {session.attempt} of {session.max_retries}",
        )
        return 1
    transition(
        db,
        session,
        SessionStatus.ERROR,
        reason=Reason.NODE_LOST,
        now=now,
        message="the node running this session stopped reporting",
    )
    return 0


async def reap_step(ctx: LoopContext) -> bool:
    """Destroy containers that alive nodes run but the manager has no live allocation for.

    Container rows are committed before dispatch creates anything, so a reported container
    without a live row is an orphan: its session ended while the node was unreachable, or it
    was left behind by an agent restart."""
    async with ctx.db_factory() as db:
        agents = (
            await db.execute(
                select(AgentRow.id, AgentRow.advertised_url, AgentRow.reported_containers).where(
                    AgentRow.status == AgentStatus.ALIVE
                )
            )
        ).all()
        reported = {c["container_id"] for _, _, cs in agents for c in cs}
        live = set(
            (
                await db.scalars(
                    select(SessionContainerRow.id).where(
                        SessionContainerRow.id.in_(reported),
                        SessionContainerRow.released_at.is_(None),
                    )
                )
            ).all()
        )
    targets = [
        (url, c["container_id"])
        for _, url, cs in agents
        for c in cs
        if c["container_id"] not in live
    ]
    if not targets:
        return False
    await asyncio.gather(
        *(ctx.agent(url).destroy_container(cid) for url, cid in targets), return_exceptions=True
    )
    log.info("reaped orphans", extra={"containers": [cid for _, cid in targets]})
    return False
