"""Nodes as the manager sees them: heartbeats fold agent reports into rows; admins list, cordon,
uncordon and drain them; a node whose heartbeat stops is marked lost by a reconciler."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent.contract import NodeReport
from manager.auth.principal import Principal
from manager.db.models import AgentRow, AgentStatus, SessionContainerRow
from manager.errors import NotFound
from manager.services.common import require
from manager.services.ledger import to_amounts
from manager.services.pagination import Page, paginate


@dataclass(frozen=True)
class HeartbeatResult:
    came_back: bool
    orphans: list[str]  # container ids the agent runs that the manager does not know


async def record_heartbeat(
    db: AsyncSession, *, report: NodeReport, now: datetime
) -> HeartbeatResult:
    """Upsert the node row from its report. A lost node that reports again comes back alive."""
    values: dict[str, Any] = {
        "resource_group": report.resource_group,
        "advertised_url": report.advertised_url,
        "architecture": report.architecture,
        "runtime": report.runtime,
        "agent_version": report.agent_version,
        "capacity": {k: str(v) for k, v in report.capacity.items()},
        "devices": [d.model_dump(mode="json") for d in report.devices],
        "images": [i.model_dump(mode="json") for i in report.images],
        "runtime_health": report.runtime_health.model_dump(mode="json"),
        "plugin_errors": report.plugin_errors,
        "reported_containers": [c.model_dump(mode="json") for c in report.containers],
        "last_heartbeat_at": now,
        "status": AgentStatus.ALIVE,
        "lost_at": None,
    }
    previous = await db.scalar(
        select(AgentRow.status).where(AgentRow.id == report.node_id).with_for_update()
    )
    await db.execute(
        insert(AgentRow)
        .values(id=report.node_id, allocated={}, **values)
        .on_conflict_do_update(index_elements=[AgentRow.id], set_=values)
    )
    known = set(
        (
            await db.scalars(
                select(SessionContainerRow.id).where(
                    SessionContainerRow.id.in_([c.container_id for c in report.containers]),
                    SessionContainerRow.released_at.is_(None),
                )
            )
        ).all()
    )
    orphans = [c.container_id for c in report.containers if c.container_id not in known]
    return HeartbeatResult(came_back=previous is AgentStatus.LOST, orphans=orphans)


async def list_agents(
    db: AsyncSession,
    principal: Principal,
    *,
    resource_group: str | None,
    status: AgentStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[AgentRow]:
    query = select(AgentRow)
    if resource_group:
        query = query.where(AgentRow.resource_group == resource_group)
    if status:
        query = query.where(AgentRow.status == status)
    return await paginate(db, query, model=AgentRow, cursor=cursor, limit=limit)


async def get_agent(db: AsyncSession, *, agent_id: str) -> AgentRow:
    row = await db.get(AgentRow, agent_id)
    if row is None:
        raise NotFound("node not found")
    return row


async def set_schedulable(
    db: AsyncSession, principal: Principal, *, agent_id: str, cordoned: bool, draining: bool
) -> AgentRow:
    require(principal.is_superadmin, "only a superadmin can cordon or drain nodes")
    row = await get_agent(db, agent_id=agent_id)
    row.cordoned = cordoned
    row.draining = draining
    return row


async def mark_lost_agents(db: AsyncSession, *, now: datetime, lost_after_s: float) -> list[str]:
    """Mark alive nodes whose last heartbeat is older than the threshold as lost."""
    cutoff = now - timedelta(seconds=lost_after_s)
    result = await db.scalars(
        update(AgentRow)
        .where(AgentRow.status == AgentStatus.ALIVE, AgentRow.last_heartbeat_at < cutoff)
        .values(status=AgentStatus.LOST, lost_at=now)
        .returning(AgentRow.id)
    )
    return list(result.all())


def utilisation(row: AgentRow) -> dict[str, Decimal]:
    """Allocated share of capacity per slot (0..1), from the scheduler's ledger."""
    capacity = to_amounts(row.capacity)
    used = to_amounts((row.allocated or {}).get("slots"))
    return {
        slot: (used.get(slot, Decimal(0)) / total).quantize(Decimal("0.0001"))
        for slot, total in capacity.items()
        if total > 0
    }
