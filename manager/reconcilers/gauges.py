"""Refresh the Prometheus gauges that describe the cluster rather than this process: sessions
by status and node slot utilisation. Every manager runs it, so any replica's /metrics answers."""

from __future__ import annotations

from sqlalchemy import func, select

from manager.db.models import AgentRow, AgentStatus, SessionRow
from manager.lifecycle.session import SessionStatus
from manager.reconcilers.context import LoopContext
from manager.services.agents import utilisation


async def gauges_step(ctx: LoopContext) -> bool:
    async with ctx.db_factory() as db:
        counts = dict(
            (await db.execute(select(SessionRow.status, func.count()).group_by(SessionRow.status)))
            .tuples()
            .all()
        )
        agents = (
            await db.scalars(select(AgentRow).where(AgentRow.status == AgentStatus.ALIVE))
        ).all()
    for status in SessionStatus:
        ctx.metrics.sessions_by_status.labels(status.value).set(counts.get(status, 0))
    ctx.metrics.node_utilisation.clear()  # lost or removed nodes must disappear
    for agent in agents:
        for slot, ratio in utilisation(agent).items():
            ctx.metrics.node_utilisation.labels(agent.id, slot).set(float(ratio))
    return False
