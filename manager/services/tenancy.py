"""Domains, projects, users and memberships. Every read is scoped to what the principal may see;
anything outside the scope is reported as not found so its existence does not leak."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth import crypto
from manager.auth.principal import Principal
from manager.db.models import (
    DomainRow,
    MembershipRow,
    ProjectRole,
    ProjectRow,
    UserRole,
    UserRow,
)
from manager.errors import Conflict, Forbidden, NotFound
from manager.services.common import apply_changes, insert_row, require
from manager.services.pagination import Page, paginate

# --- domains ----------------------------------------------------------------------------------


async def create_domain(
    db: AsyncSession, principal: Principal, *, name: str, description: str
) -> DomainRow:
    require(principal.is_superadmin, "only a superadmin can create domains")
    row = DomainRow(name=name, description=description)
    return await insert_row(db, row, conflict=f"a domain named {name!r} already exists")


async def list_domains(
    db: AsyncSession,
    principal: Principal,
    *,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> Page[DomainRow]:
    query = select(DomainRow)
    if not principal.is_superadmin:
        query = query.where(DomainRow.id == principal.domain_id)
    if name:
        query = query.where(DomainRow.name.startswith(name, autoescape=True))
    return await paginate(db, query, model=DomainRow, cursor=cursor, limit=limit)


async def get_domain(db: AsyncSession, principal: Principal, *, domain_id: uuid.UUID) -> DomainRow:
    row = await db.get(DomainRow, domain_id)
    if row is None or not (principal.is_superadmin or principal.domain_id == domain_id):
        raise NotFound("domain not found")
    return row


async def update_domain(
    db: AsyncSession, principal: Principal, *, domain_id: uuid.UUID, changes: dict[str, Any]
) -> DomainRow:
    row = await get_domain(db, principal, domain_id=domain_id)
    require(principal.is_superadmin, "only a superadmin can change domains")
    return await apply_changes(db, row, changes, conflict="a domain with that name already exists")


# --- projects ---------------------------------------------------------------------------------


async def create_project(
    db: AsyncSession,
    principal: Principal,
    *,
    domain_id: uuid.UUID | None,
    name: str,
    description: str,
) -> ProjectRow:
    domain_id = domain_id or principal.domain_id
    await get_domain(db, principal, domain_id=domain_id)
    require(principal.is_domain_admin_of(domain_id), "only domain admins can create projects")
    row = ProjectRow(domain_id=domain_id, name=name, description=description)
    return await insert_row(db, row, conflict=f"a project named {name!r} exists in this domain")


def visible_projects(principal: Principal) -> Select[Any]:
    query = select(ProjectRow)
    if principal.is_superadmin:
        return query
    if principal.role is UserRole.DOMAIN_ADMIN:
        return query.where(ProjectRow.domain_id == principal.domain_id)
    return query.where(ProjectRow.id.in_(list(principal.project_roles)))


async def list_projects(
    db: AsyncSession,
    principal: Principal,
    *,
    domain_id: uuid.UUID | None,
    name: str | None,
    cursor: str | None,
    limit: int,
) -> Page[ProjectRow]:
    query = visible_projects(principal)
    if domain_id:
        query = query.where(ProjectRow.domain_id == domain_id)
    if name:
        query = query.where(ProjectRow.name.startswith(name, autoescape=True))
    return await paginate(db, query, model=ProjectRow, cursor=cursor, limit=limit)


async def get_project(
    db: AsyncSession, principal: Principal, *, project_id: uuid.UUID
) -> ProjectRow:
    row = await db.scalar(visible_projects(principal).where(ProjectRow.id == project_id))
    if row is None:
        raise NotFound("project not found")
    return row


async def update_project(
    db: AsyncSession, principal: Principal, *, project_id: uuid.UUID, changes: dict[str, Any]
) -> ProjectRow:
    row = await get_project(db, principal, project_id=project_id)
    require(
        principal.is_project_admin_of(project_id=row.id, domain_id=row.domain_id),
        "only project or domain admins can change a project",
    )
    return await apply_changes(db, row, changes, conflict="a project with that name exists")


async def delete_project(db: AsyncSession, principal: Principal, *, project_id: uuid.UUID) -> None:
    row = await get_project(db, principal, project_id=project_id)
    require(principal.is_domain_admin_of(row.domain_id), "only domain admins delete projects")
    await db.delete(row)
    try:
        await db.flush()
    except IntegrityError as exc:
        raise Conflict("project still owns resources; deactivate it instead") from exc


# --- users ------------------------------------------------------------------------------------


async def create_user(
    db: AsyncSession,
    principal: Principal,
    *,
    domain_id: uuid.UUID | None,
    username: str,
    email: str | None,
    full_name: str,
    password: str | None,
    role: UserRole,
) -> UserRow:
    domain_id = domain_id or principal.domain_id
    await get_domain(db, principal, domain_id=domain_id)
    require(principal.is_domain_admin_of(domain_id), "only domain admins can create users")
    if role is UserRole.SUPERADMIN:
        require(principal.is_superadmin, "only a superadmin can create superadmins")
    row = UserRow(
        domain_id=domain_id,
        username=username,
        email=email,
        full_name=full_name,
        password_hash=crypto.hash_password(password) if password else None,
        role=role,
    )
    return await insert_row(db, row, conflict="a user with that username or email already exists")


def visible_users(principal: Principal) -> Select[Any]:
    query = select(UserRow)
    if principal.is_superadmin:
        return query
    if principal.role is UserRole.DOMAIN_ADMIN:
        return query.where(UserRow.domain_id == principal.domain_id)
    admin_of = [p for p, r in principal.project_roles.items() if r is ProjectRole.ADMIN]
    # Project admins see the members of the projects they administer; everyone sees themself.
    member_of_admin_project = exists().where(
        MembershipRow.user_id == UserRow.id, MembershipRow.project_id.in_(admin_of)
    )
    return query.where((UserRow.id == principal.user_id) | member_of_admin_project)


async def list_users(
    db: AsyncSession,
    principal: Principal,
    *,
    domain_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    username: str | None,
    is_active: bool | None,
    cursor: str | None,
    limit: int,
) -> Page[UserRow]:
    query = visible_users(principal)
    if domain_id:
        query = query.where(UserRow.domain_id == domain_id)
    if project_id:
        query = query.where(
            exists().where(
                MembershipRow.user_id == UserRow.id, MembershipRow.project_id == project_id
            )
        )
    if username:
        query = query.where(UserRow.username.startswith(username, autoescape=True))
    if is_active is not None:
        query = query.where(UserRow.is_active == is_active)
    return await paginate(db, query, model=UserRow, cursor=cursor, limit=limit)


async def get_user(db: AsyncSession, principal: Principal, *, user_id: uuid.UUID) -> UserRow:
    row = await db.scalar(visible_users(principal).where(UserRow.id == user_id))
    if row is None:
        raise NotFound("user not found")
    return row


SELF_EDITABLE = {"full_name", "password", "email"}


async def update_user(
    db: AsyncSession, principal: Principal, *, user_id: uuid.UUID, changes: dict[str, Any]
) -> UserRow:
    row = await get_user(db, principal, user_id=user_id)
    is_admin = principal.is_domain_admin_of(row.domain_id)
    if row.id == principal.user_id and (
        changes.get("is_active") is False or changes.get("role") not in (None, row.role)
    ):
        # Nobody can lock themself out; another admin has to do it.
        raise Forbidden("you cannot deactivate or demote your own account")
    if not is_admin:
        require(
            row.id == principal.user_id and set(changes) <= SELF_EDITABLE,
            "you may change only your own name, email and password",
        )
    if changes.get("role") is UserRole.SUPERADMIN or row.role is UserRole.SUPERADMIN:
        require(principal.is_superadmin, "only a superadmin can change superadmins")
    if "password" in changes:
        password = changes.pop("password")
        row.password_hash = crypto.hash_password(password) if password else None
    return await apply_changes(
        db, row, changes, conflict="a user with that username or email exists"
    )


# --- memberships ------------------------------------------------------------------------------


async def list_members(
    db: AsyncSession, principal: Principal, *, project_id: uuid.UUID
) -> list[tuple[MembershipRow, UserRow]]:
    await get_project(db, principal, project_id=project_id)
    result = await db.execute(
        select(MembershipRow, UserRow)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(MembershipRow.project_id == project_id)
        .order_by(UserRow.username)
    )
    return [(m, u) for m, u in result.all()]


async def set_member(
    db: AsyncSession,
    principal: Principal,
    *,
    project_id: uuid.UUID,
    user_id: uuid.UUID,
    role: ProjectRole,
) -> MembershipRow:
    project = await get_project(db, principal, project_id=project_id)
    require(
        principal.is_project_admin_of(project_id=project.id, domain_id=project.domain_id),
        "only project or domain admins manage members",
    )
    user = await db.get(UserRow, user_id)
    if user is None or user.domain_id != project.domain_id:
        raise NotFound("user not found in this project's domain")
    row = await db.get(MembershipRow, (project_id, user_id))
    if row is None:
        row = MembershipRow(project_id=project_id, user_id=user_id, role=role)
        db.add(row)
    else:
        row.role = role
    await db.flush()
    return row


async def remove_member(
    db: AsyncSession, principal: Principal, *, project_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    project = await get_project(db, principal, project_id=project_id)
    require(
        principal.is_project_admin_of(project_id=project.id, domain_id=project.domain_id),
        "only project or domain admins manage members",
    )
    row = await db.get(MembershipRow, (project_id, user_id))
    if row is None:
        raise NotFound("membership not found")
    await db.delete(row)
