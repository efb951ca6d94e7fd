"""Usage accounting, read from the container allocation rows: every allocation counts from
`allocated_at` to `released_at` (or now), clipped to the period, exactly once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.db.models import ProjectRole, UserRole
from manager.errors import InvalidRequest

HOURS = Decimal(3600)

# Slot-hours per group, one row per (group, slot), plus distinct sessions per group.
_USAGE_SQL = """
SELECT {group_col} AS group_id, slot.key AS slot,
       SUM(slot.value::numeric * EXTRACT(EPOCH FROM
           LEAST(COALESCE(c.released_at, :now), :end) - GREATEST(c.allocated_at, :start)))
         AS slot_seconds
FROM session_containers c, jsonb_each_text(c.slots) AS slot
WHERE c.allocated_at < :end AND COALESCE(c.released_at, :now) > :start {scope}
GROUP BY 1, 2
"""
_SESSIONS_SQL = """
SELECT {group_col} AS group_id, COUNT(DISTINCT c.session_id) AS sessions
FROM session_containers c
WHERE c.allocated_at < :end AND COALESCE(c.released_at, :now) > :start {scope}
GROUP BY 1
"""


@dataclass
class UsageLine:
    group_id: uuid.UUID
    sessions: int = 0
    gpu_hours: dict[str, Decimal] = field(default_factory=dict)  # by device slot
    cpu_hours: Decimal = Decimal(0)
    mem_gib_hours: Decimal = Decimal(0)
    slot_hours: dict[str, Decimal] = field(default_factory=dict)


async def usage_report(
    db: AsyncSession,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    group_by: str,
    now: datetime,
) -> list[UsageLine]:
    if end <= start:
        raise InvalidRequest("end must be after start", code="invalid_period")
    if group_by not in ("user", "project"):
        raise InvalidRequest("group_by must be user or project", code="invalid_request")
    group_col = "c.user_id" if group_by == "user" else "c.project_id"
    scope, params = _scope_filter(principal)
    params |= {"start": start, "end": end, "now": now}
    lines: dict[uuid.UUID, UsageLine] = {}
    rows = await db.execute(text(_USAGE_SQL.format(group_col=group_col, scope=scope)), params)
    for group_id, slot, seconds in rows.all():
        line = lines.setdefault(group_id, UsageLine(group_id=group_id))
        hours = (Decimal(seconds) / HOURS).quantize(Decimal("0.0001"))
        line.slot_hours[slot] = hours
        if slot == "cpu":
            line.cpu_hours = hours
        elif slot == "mem":
            line.mem_gib_hours = (hours / Decimal(2**30)).quantize(Decimal("0.0001"))
        elif slot.endswith(".device"):
            line.gpu_hours[slot] = hours
    rows = await db.execute(text(_SESSIONS_SQL.format(group_col=group_col, scope=scope)), params)
    for group_id, sessions in rows.all():
        lines.setdefault(group_id, UsageLine(group_id=group_id)).sessions = sessions
    return sorted(lines.values(), key=lambda line: str(line.group_id))


def _scope_filter(principal: Principal) -> tuple[str, dict[str, Any]]:
    """Rows the caller may see: all (superadmin), their domain, the projects they administer
    plus their own, or only their own."""
    if principal.is_superadmin:
        return "", {}
    if principal.role is UserRole.DOMAIN_ADMIN:
        return "AND c.domain_id = :domain_id", {"domain_id": principal.domain_id}
    admin_of = [p for p, r in principal.project_roles.items() if r is ProjectRole.ADMIN]
    if admin_of:
        return (
            "AND (c.user_id = :user_id OR c.project_id = ANY(:projects))",
            {"user_id": principal.user_id, "projects": admin_of},
        )
    return "AND c.user_id = :user_id", {"user_id": principal.user_id}
