"""Handlers for domains, projects, users and memberships: parse → one service call → model."""

from __future__ import annotations

from manager.api.framework import Call
from manager.api.schemas.common import PageResponse
from manager.api.schemas.tenancy import (
    DomainOut,
    MemberList,
    MemberOut,
    ProjectOut,
    UserOut,
)
from manager.services import tenancy
from manager.state import STATE_KEY


def _forget_principals(call: Call) -> None:
    """Users, roles and memberships feed the cached principals: drop them on any change."""
    call.request.app[STATE_KEY].principals.clear()


def _changes(call: Call) -> dict[str, object]:
    return call.body.model_dump(exclude_unset=True)


async def create_domain(call: Call) -> DomainOut:
    row = await tenancy.create_domain(call.tx, call.me, **call.body.model_dump())
    return DomainOut.model_validate(row)


async def list_domains(call: Call) -> PageResponse[DomainOut]:
    q = call.query
    page = await tenancy.list_domains(
        call.tx, call.me, name=q.name, cursor=q.cursor, limit=q.limit
    )
    return PageResponse[DomainOut](
        items=[DomainOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


async def get_domain(call: Call) -> DomainOut:
    row = await tenancy.get_domain(call.tx, call.me, domain_id=call.path_uuid("domain_id"))
    return DomainOut.model_validate(row)


async def update_domain(call: Call) -> DomainOut:
    row = await tenancy.update_domain(
        call.tx, call.me, domain_id=call.path_uuid("domain_id"), changes=_changes(call)
    )
    return DomainOut.model_validate(row)


async def create_project(call: Call) -> ProjectOut:
    row = await tenancy.create_project(call.tx, call.me, **call.body.model_dump())
    return ProjectOut.model_validate(row)


async def list_projects(call: Call) -> PageResponse[ProjectOut]:
    q = call.query
    page = await tenancy.list_projects(
        call.tx, call.me, domain_id=q.domain_id, name=q.name, cursor=q.cursor, limit=q.limit
    )
    return PageResponse[ProjectOut](
        items=[ProjectOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


async def get_project(call: Call) -> ProjectOut:
    row = await tenancy.get_project(call.tx, call.me, project_id=call.path_uuid("project_id"))
    return ProjectOut.model_validate(row)


async def update_project(call: Call) -> ProjectOut:
    row = await tenancy.update_project(
        call.tx, call.me, project_id=call.path_uuid("project_id"), changes=_changes(call)
    )
    return ProjectOut.model_validate(row)


async def delete_project(call: Call) -> None:
    _forget_principals(call)
    await tenancy.delete_project(call.tx, call.me, project_id=call.path_uuid("project_id"))


async def create_user(call: Call) -> UserOut:
    row = await tenancy.create_user(call.tx, call.me, **call.body.model_dump())
    return UserOut.model_validate(row)


async def list_users(call: Call) -> PageResponse[UserOut]:
    q = call.query
    page = await tenancy.list_users(
        call.tx,
        call.me,
        domain_id=q.domain_id,
        project_id=q.project_id,
        username=q.username,
        is_active=q.is_active,
        cursor=q.cursor,
        limit=q.limit,
    )
    return PageResponse[UserOut](
        items=[UserOut.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )


async def get_user(call: Call) -> UserOut:
    row = await tenancy.get_user(call.tx, call.me, user_id=call.path_uuid("user_id"))
    return UserOut.model_validate(row)


async def update_user(call: Call) -> UserOut:
    _forget_principals(call)
    row = await tenancy.update_user(
        call.tx, call.me, user_id=call.path_uuid("user_id"), changes=_changes(call)
    )
    return UserOut.model_validate(row)


async def list_members(call: Call) -> MemberList:
    rows = await tenancy.list_members(call.tx, call.me, project_id=call.path_uuid("project_id"))
    return MemberList(
        items=[
            MemberOut(
                project_id=m.project_id,
                user_id=m.user_id,
                username=u.username,
                role=m.role,
                created_at=m.created_at,
            )
            for m, u in rows
        ]
    )


async def set_member(call: Call) -> MemberOut:
    _forget_principals(call)
    project_id, user_id = call.path_uuid("project_id"), call.path_uuid("user_id")
    row = await tenancy.set_member(
        call.tx, call.me, project_id=project_id, user_id=user_id, role=call.body.role
    )
    user = await tenancy.get_user(call.tx, call.me, user_id=user_id)
    return MemberOut(
        project_id=row.project_id,
        user_id=row.user_id,
        username=user.username,
        role=row.role,
        created_at=row.created_at,
    )


async def remove_member(call: Call) -> None:
    _forget_principals(call)
    await tenancy.remove_member(
        call.tx,
        call.me,
        project_id=call.path_uuid("project_id"),
        user_id=call.path_uuid("user_id"),
    )
