"""Resource groups (named node pools) and which projects may use them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.db.models import ProjectRow, ResourceGroupProjectRow, ResourceGroupRow
from manager.errors import NotFound
from manager.services.common import apply_changes, insert_row, require
from manager.services.pagination import Page, paginate
from manager.services.tenancy import visible_projects


def visible_groups(principal: Principal) -> Select[Any]:
    query = select(ResourceGroupRow)
    if principal.is_superadmin:
        return query
    allowed = visible_projects(principal).with_only_columns(ProjectRow.id)
    return query.where(
        exists().where(
            ResourceGroupProjectRow.resource_group_id == ResourceGroupRow.id,
            ResourceGroupProjectRow.project_id.in_(allowed.scalar_subquery()),
        )
    )


async def create_group(
    db: AsyncSession, principal: Principal, *, fields: dict[str, Any], project_ids: list[uuid.UUID]
) -> ResourceGroupRow:
    require(principal.is_superadmin, "only a superadmin can create resource groups")
    row = await insert_row(db, ResourceGroupRow(**fields), conflict="resource group name is taken")
    await _set_projects(db, group_id=row.id, project_ids=project_ids)
    return row


async def list_groups(
    db: AsyncSession, principal: Principal, *, name: str | None, cursor: str | None, limit: int
) -> Page[ResourceGroupRow]:
    query = visible_groups(principal)
    if name:
        query = query.where(ResourceGroupRow.name.startswith(name, autoescape=True))
    return await paginate(db, query, model=ResourceGroupRow, cursor=cursor, limit=limit)


async def get_group(
    db: AsyncSession, principal: Principal, *, group_id: uuid.UUID
) -> ResourceGroupRow:
    row = await db.scalar(visible_groups(principal).where(ResourceGroupRow.id == group_id))
    if row is None:
        raise NotFound("resource group not found")
    return row


async def group_projects(db: AsyncSession, *, group_id: uuid.UUID) -> list[uuid.UUID]:
    return (await projects_of_groups(db, group_ids=[group_id]))[group_id]


async def projects_of_groups(
    db: AsyncSession, *, group_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each group's project ids, for a whole page of groups in one query."""
    out: dict[uuid.UUID, list[uuid.UUID]] = {gid: [] for gid in group_ids}
    if not group_ids:
        return out
    rows = await db.execute(
        select(ResourceGroupProjectRow.resource_group_id, ResourceGroupProjectRow.project_id)
        .where(ResourceGroupProjectRow.resource_group_id.in_(group_ids))
        .order_by(ResourceGroupProjectRow.project_id)
    )
    for group_id, project_id in rows.all():
        out[group_id].append(project_id)
    return out


async def update_group(
    db: AsyncSession,
    principal: Principal,
    *,
    group_id: uuid.UUID,
    changes: dict[str, Any],
    project_ids: list[uuid.UUID] | None,
) -> ResourceGroupRow:
    row = await get_group(db, principal, group_id=group_id)
    require(principal.is_superadmin, "only a superadmin can change resource groups")
    await apply_changes(db, row, changes, conflict="resource group name is taken")
    if project_ids is not None:
        await _set_projects(db, group_id=row.id, project_ids=project_ids)
    return row


async def delete_group(db: AsyncSession, principal: Principal, *, group_id: uuid.UUID) -> None:
    row = await get_group(db, principal, group_id=group_id)
    require(principal.is_superadmin, "only a superadmin can delete resource groups")
    await db.delete(row)


async def _set_projects(
    db: AsyncSession, *, group_id: uuid.UUID, project_ids: list[uuid.UUID]
) -> None:
    found = set(
        (await db.scalars(select(ProjectRow.id).where(ProjectRow.id.in_(project_ids)))).all()
    )
    missing = set(project_ids) - found
    if missing:
        raise NotFound(f"projects not found: {', '.join(sorted(map(str, missing)))}")
    await db.execute(
        delete(ResourceGroupProjectRow).where(
            ResourceGroupProjectRow.resource_group_id == group_id
        )
    )
    for pid in sorted(found):
        db.add(ResourceGroupProjectRow(resource_group_id=group_id, project_id=pid))
    await db.flush()
