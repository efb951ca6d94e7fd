"""Handlers for resource groups."""

from __future__ import annotations

from manager.api.framework import Call
from manager.api.schemas.common import PageResponse
from manager.api.schemas.resource_groups import ResourceGroupOut
from manager.db.models import ResourceGroupRow
from manager.services import resource_groups as groups


async def _out(call: Call, row: ResourceGroupRow) -> ResourceGroupOut:
    out = ResourceGroupOut.model_validate(row)
    out.project_ids = await groups.group_projects(call.tx, group_id=row.id)
    return out


async def create_group(call: Call) -> ResourceGroupOut:
    fields = call.body.model_dump()
    project_ids = fields.pop("project_ids")
    row = await groups.create_group(call.tx, call.me, fields=fields, project_ids=project_ids)
    return await _out(call, row)


async def list_groups(call: Call) -> PageResponse[ResourceGroupOut]:
    q = call.query
    page = await groups.list_groups(call.tx, call.me, name=q.name, cursor=q.cursor, limit=q.limit)
    projects = await groups.projects_of_groups(call.tx, group_ids=[r.id for r in page.items])
    items = []
    for row in page.items:
        out = ResourceGroupOut.model_validate(row)
        out.project_ids = projects[row.id]
        items.append(out)
    return PageResponse[ResourceGroupOut](items=items, next_cursor=page.next_cursor)


async def get_group(call: Call) -> ResourceGroupOut:
    row = await groups.get_group(call.tx, call.me, group_id=call.path_uuid("group_id"))
    return await _out(call, row)


async def update_group(call: Call) -> ResourceGroupOut:
    changes = call.body.model_dump(exclude_unset=True)
    project_ids = changes.pop("project_ids", None)
    row = await groups.update_group(
        call.tx,
        call.me,
        group_id=call.path_uuid("group_id"),
        changes=changes,
        project_ids=project_ids,
    )
    return await _out(call, row)


async def delete_group(call: Call) -> None:
    await groups.delete_group(call.tx, call.me, group_id=call.path_uuid("group_id"))
