"""Handlers for quotas (resource policies) and usage reports."""

from __future__ import annotations

from sqlalchemy import select

from manager.api.framework import Call
from manager.api.schemas.quotas import QuotaList, QuotaOut, UsageLineOut, UsageReport
from manager.db.models import ProjectRow, ResourcePolicyRow, UserRow
from manager.errors import InvalidRequest
from manager.services import quotas, usage
from manager.services.ledger import to_amounts


async def _scope(call: Call) -> quotas.ScopeRef:
    return await quotas.resolve_scope(
        call.tx,
        call.me,
        kind=call.path("kind"),
        target_id=call.path_uuid("target_id"),
        project_id=call.query.project_id,
    )


async def _out(call: Call, key: str, row: ResourcePolicyRow | None) -> QuotaOut:
    used, sessions = await quotas.usage_of(call.tx, key=key)
    if row is None:
        return QuotaOut(scope=key, used=used, sessions=sessions)
    return QuotaOut(
        scope=key,
        slots={k: to_amounts({k: v})[k] for k, v in row.slots.items()},
        max_concurrent_sessions=row.max_concurrent_sessions,
        max_pending_sessions=row.max_pending_sessions,
        max_session_lifetime_s=row.max_session_lifetime_s,
        default_idle_timeout_s=row.default_idle_timeout_s,
        allowed_resource_groups=row.allowed_resource_groups,
        used=used,
        sessions=sessions,
        updated_at=row.updated_at,
    )


async def set_quota(call: Call) -> QuotaOut:
    scope = await _scope(call)
    row = await quotas.set_policy(
        call.tx, call.me, scope=scope, fields=call.body.model_dump(), now=call.now
    )
    call.wake("schedule")  # a raised limit may let sessions start
    return await _out(call, scope.key, row)


async def get_quota(call: Call) -> QuotaOut:
    scope = await _scope(call)
    return await _out(call, scope.key, await quotas.get_policy(call.tx, scope=scope))


async def delete_quota(call: Call) -> None:
    scope = await _scope(call)
    await quotas.delete_policy(call.tx, call.me, scope=scope)
    call.wake("schedule")


async def list_quotas(call: Call) -> QuotaList:
    rows = await quotas.list_policies(call.tx, call.me)
    return QuotaList(items=[await _out(call, r.scope, r) for r in rows])


async def my_quota(call: Call) -> QuotaList:
    """The caller's occupancy against every limit that applies to them."""
    keys = await quotas.my_scopes(call.tx, call.me)
    rows = {
        r.scope: r
        for r in (
            await call.tx.scalars(
                select(ResourcePolicyRow).where(ResourcePolicyRow.scope.in_(keys))
            )
        ).all()
    }
    return QuotaList(items=[await _out(call, key, rows.get(key)) for key in keys])


async def usage_report(call: Call) -> UsageReport:
    q = call.query
    if q.start.tzinfo is None or (q.end is not None and q.end.tzinfo is None):
        raise InvalidRequest("start and end must carry a timezone, e.g. 2026-11-01T00:00:00Z")
    end = q.end or call.now
    lines = await usage.usage_report(
        call.tx, call.me, start=q.start, end=end, group_by=q.group_by, now=call.now
    )
    model = UserRow if q.group_by == "user" else ProjectRow
    label = UserRow.username if q.group_by == "user" else ProjectRow.name
    names = dict(
        (
            await call.tx.execute(
                select(model.id, label).where(model.id.in_([line.group_id for line in lines]))
            )
        ).all()
    )
    return UsageReport(
        start=q.start,
        end=end,
        group_by=q.group_by,
        items=[
            UsageLineOut(
                group_id=line.group_id,
                name=names.get(line.group_id, ""),
                sessions=line.sessions,
                gpu_hours=line.gpu_hours,
                cpu_hours=line.cpu_hours,
                mem_gib_hours=line.mem_gib_hours,
                slot_hours=line.slot_hours,
            )
            for line in lines
        ],
    )
