"""Resource policies (quotas) per domain, project, user and user-within-project: set, read,
remove, and occupancy against each limit. Enforcement happens in the scheduler's commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.db.models import (
    ProjectRole,
    ProjectRow,
    QuotaUsageRow,
    ResourcePolicyRow,
    UserRole,
    UserRow,
)
from manager.errors import InvalidRequest, NotFound
from manager.scheduler.slots import InvalidSlotValue, parse_amount
from manager.services.common import require
from manager.services.ledger import session_scopes, to_amounts
from manager.services.tenancy import get_domain, get_project, get_user

KINDS = ("domain", "project", "user", "user_in_project")


@dataclass(frozen=True)
class ScopeRef:
    kind: str
    key: str  # "project:<id>" etc., the ledger's scope string
    domain_id: uuid.UUID
    project_id: uuid.UUID | None


async def resolve_scope(
    db: AsyncSession,
    principal: Principal,
    *,
    kind: str,
    target_id: uuid.UUID,
    project_id: uuid.UUID | None,
) -> ScopeRef:
    """Find the scope's owner, checking the caller may see it (404 otherwise)."""
    if kind == "domain":
        domain = await get_domain(db, principal, domain_id=target_id)
        return ScopeRef(kind, f"domain:{domain.id}", domain.id, None)
    if kind == "project":
        project = await get_project(db, principal, project_id=target_id)
        return ScopeRef(kind, f"project:{project.id}", project.domain_id, project.id)
    if kind == "user":
        user = await get_user(db, principal, user_id=target_id)
        return ScopeRef(kind, f"user:{user.id}", user.domain_id, None)
    if kind == "user_in_project":
        if project_id is None:
            raise InvalidRequest(
                "user_in_project quotas need ?project_id=", code="project_required"
            )
        project = await get_project(db, principal, project_id=project_id)
        user = await get_user(db, principal, user_id=target_id)
        return ScopeRef(
            kind, f"user_in_project:{project.id}/{user.id}", project.domain_id, project.id
        )
    raise NotFound(f"unknown quota kind {kind!r}; use one of {', '.join(KINDS)}")


def may_manage(principal: Principal, scope: ScopeRef) -> bool:
    if scope.kind == "domain":
        return principal.is_superadmin
    if scope.kind == "user_in_project" and scope.project_id is not None:
        return principal.is_project_admin_of(
            project_id=scope.project_id, domain_id=scope.domain_id
        )
    return principal.is_domain_admin_of(scope.domain_id)


async def set_policy(
    db: AsyncSession,
    principal: Principal,
    *,
    scope: ScopeRef,
    fields: dict[str, Any],
    now: datetime,
) -> ResourcePolicyRow:
    require(may_manage(principal, scope), f"you may not set quotas of this {scope.kind}")
    slots: dict[str, Decimal] = {}
    for name, raw in (fields.pop("slots", None) or {}).items():
        value = repr(raw) if isinstance(raw, float) else raw
        try:
            slots[name] = parse_amount(name, value)
        except (InvalidSlotValue, ValueError) as exc:
            raise InvalidRequest(str(exc), code="invalid_resources") from None
    row = await db.get(ResourcePolicyRow, scope.key, with_for_update=True)
    if row is None:
        row = ResourcePolicyRow(scope=scope.key, slots={}, updated_at=now)
        db.add(row)
    # Zero is a real limit ("none of this"), so keep zeros that to_json would drop.
    row.slots = {k: format(v.normalize(), "f") for k, v in sorted(slots.items())}
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = now
    await db.flush()
    return row


async def get_policy(db: AsyncSession, *, scope: ScopeRef) -> ResourcePolicyRow | None:
    return await db.get(ResourcePolicyRow, scope.key)


async def delete_policy(db: AsyncSession, principal: Principal, *, scope: ScopeRef) -> None:
    require(may_manage(principal, scope), f"you may not change quotas of this {scope.kind}")
    row = await db.get(ResourcePolicyRow, scope.key)
    if row is None:
        raise NotFound("no quota is set for this scope")
    await db.delete(row)


async def usage_of(db: AsyncSession, *, key: str) -> tuple[dict[str, Decimal], int]:
    row = await db.get(QuotaUsageRow, key)
    if row is None:
        return {}, 0
    return to_amounts(row.slots), row.sessions


async def list_policies(db: AsyncSession, principal: Principal) -> list[ResourcePolicyRow]:
    rows = (await db.scalars(select(ResourcePolicyRow).order_by(ResourcePolicyRow.scope))).all()
    if principal.is_superadmin:
        return list(rows)
    visible = await _visible_keys(db, principal)
    return [r for r in rows if r.scope in visible or r.scope.split("/")[0] in visible]


async def my_scopes(db: AsyncSession, principal: Principal) -> list[str]:
    """Every scope the caller's sessions are charged to, across their projects."""
    keys: list[str] = [f"domain:{principal.domain_id}", f"user:{principal.user_id}"]
    for project_id in principal.project_roles:
        for key in session_scopes(
            domain_id=principal.domain_id, project_id=project_id, user_id=principal.user_id
        ):
            if key not in keys:
                keys.append(key)
    return keys


async def _visible_keys(db: AsyncSession, principal: Principal) -> set[str]:
    """Scope keys the caller may read: their own, plus those of what they administer. A
    `user_in_project:<p>/<u>` key is visible when its `user_in_project:<p>` prefix is."""
    keys = set(await my_scopes(db, principal))
    if principal.role is UserRole.DOMAIN_ADMIN:
        projects = (
            await db.scalars(
                select(ProjectRow.id).where(ProjectRow.domain_id == principal.domain_id)
            )
        ).all()
        users = (
            await db.scalars(select(UserRow.id).where(UserRow.domain_id == principal.domain_id))
        ).all()
        keys |= {f"project:{p}" for p in projects} | {f"user_in_project:{p}" for p in projects}
        keys |= {f"user:{u}" for u in users}
    for project_id, role in principal.project_roles.items():
        if role is ProjectRole.ADMIN:
            keys |= {f"project:{project_id}", f"user_in_project:{project_id}"}
    return keys
