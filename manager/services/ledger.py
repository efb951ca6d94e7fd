"""The resource ledger: what is allocated on each node and charged to each quota scope.

Changed only under row locks taken in one global order (agents by id, then quota scopes by key),
by the scheduler's commit (charge) and by `release_session` (refund). Every container row is
refunded once: its `released_at` is set in the same statement that selects it for refund."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from manager.db.models import AgentRow, QuotaUsageRow, SessionContainerRow

Amounts = dict[str, Decimal]


def to_amounts(raw: Mapping[str, Any] | None) -> Amounts:
    return {k: Decimal(str(v)) for k, v in (raw or {}).items()}


def to_json(amounts: Mapping[str, Decimal]) -> dict[str, str]:
    return {k: format(v.normalize(), "f") for k, v in sorted(amounts.items()) if v != 0}


def add(a: Mapping[str, Decimal], b: Mapping[str, Decimal], sign: int = 1) -> Amounts:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Decimal(0)) + sign * v
    return {k: v for k, v in out.items() if v != 0}


def session_scopes(
    *, domain_id: uuid.UUID, project_id: uuid.UUID, user_id: uuid.UUID
) -> list[str]:
    """Quota scope keys a session is charged to (same strings as the scheduler's Scope)."""
    return [
        f"domain:{domain_id}",
        f"project:{project_id}",
        f"user:{user_id}",
        f"user_in_project:{project_id}/{user_id}",
    ]


async def lock_agents(db: AsyncSession, node_ids: Iterable[str]) -> dict[str, AgentRow]:
    ids = sorted(set(node_ids))
    if not ids:
        return {}
    rows = await db.scalars(
        select(AgentRow).where(AgentRow.id.in_(ids)).order_by(AgentRow.id).with_for_update()
    )
    return {row.id: row for row in rows}


async def lock_scopes(db: AsyncSession, scopes: Iterable[str]) -> dict[str, QuotaUsageRow]:
    keys = sorted(set(scopes))
    if not keys:
        return {}
    await db.execute(
        insert(QuotaUsageRow)
        .values([{"scope": k, "slots": {}, "sessions": 0} for k in keys])
        .on_conflict_do_nothing()
    )
    rows = await db.scalars(
        select(QuotaUsageRow)
        .where(QuotaUsageRow.scope.in_(keys))
        .order_by(QuotaUsageRow.scope)
        .with_for_update()
    )
    return {row.scope: row for row in rows}


def charge_agent(
    agent: AgentRow,
    *,
    slots: Mapping[str, Decimal],
    devices: Mapping[str, Mapping[str, Decimal]],
    sign: int = 1,
) -> None:
    ledger = agent.allocated or {}
    used = add(to_amounts(ledger.get("slots")), slots, sign)
    dev_used = {d: to_amounts(v) for d, v in (ledger.get("devices") or {}).items()}
    for device_id, amounts in devices.items():
        dev_used[device_id] = add(dev_used.get(device_id, {}), amounts, sign)
    agent.allocated = {
        "slots": to_json(used),
        "devices": {d: to_json(v) for d, v in sorted(dev_used.items()) if v},
    }


def charge_scope(row: QuotaUsageRow, *, slots: Mapping[str, Decimal], sessions: int) -> None:
    row.slots = to_json(add(to_amounts(row.slots), slots))
    row.sessions = row.sessions + sessions


def container_device_amounts(
    slots: Mapping[str, Decimal], devices: Mapping[str, list[str]]
) -> dict[str, Amounts]:
    """Per device id, what a container holds of it: one unit of a whole-device slot, or the
    container's share amount (a share slot always names exactly one device)."""
    out: dict[str, Amounts] = {}
    for slot, ids in devices.items():
        if not ids:
            continue
        if len(ids) == 1 and not slot.endswith(".device"):
            out.setdefault(ids[0], {})[slot] = slots.get(slot, Decimal(0))
            continue
        for device_id in ids:
            out.setdefault(device_id, {})[slot] = Decimal(1)
    return out


async def release_session(db: AsyncSession, *, session_id: uuid.UUID, now: datetime) -> int:
    """Refund every unreleased container of a session. Returns how many were refunded; a
    second call refunds nothing, so a session is never freed twice."""
    released = (
        await db.scalars(
            update(SessionContainerRow)
            .where(
                SessionContainerRow.session_id == session_id,
                SessionContainerRow.released_at.is_(None),
            )
            .values(released_at=now)
            .returning(SessionContainerRow)
        )
    ).all()
    if not released:
        return 0
    agents = await lock_agents(db, [c.node_id for c in released])
    first = released[0]
    scopes = await lock_scopes(
        db,
        session_scopes(
            domain_id=first.domain_id, project_id=first.project_id, user_id=first.user_id
        ),
    )
    total: Amounts = {}
    for container in released:
        slots = to_amounts(container.slots)
        total = add(total, slots)
        agent = agents.get(container.node_id)
        if agent is not None:
            charge_agent(
                agent,
                slots=slots,
                devices=container_device_amounts(slots, container.devices),
                sign=-1,
            )
    # A session counts once against max_sessions however many containers it had.
    for row in scopes.values():
        charge_scope(row, slots={k: -v for k, v in total.items()}, sessions=-1)
    return len(released)
