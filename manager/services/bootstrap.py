"""First-run bootstrap: the default domain, project and resource group, and the first
superadmin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth import crypto
from manager.auth.principal import Principal
from manager.db.models import (
    DomainRow,
    MembershipRow,
    ProjectRole,
    ProjectRow,
    ResourceGroupProjectRow,
    ResourceGroupRow,
    UserRole,
    UserRow,
)
from manager.errors import Conflict
from manager.services import auth as auth_service

DEFAULT_NAME = "default"


@dataclass(frozen=True)
class Bootstrapped:
    user: UserRow
    token: str


async def ensure_defaults(db: AsyncSession) -> tuple[DomainRow, ProjectRow, ResourceGroupRow]:
    """Idempotently create the `default` domain, project and resource group (project allowed)."""
    domain = await db.scalar(select(DomainRow).where(DomainRow.name == DEFAULT_NAME))
    if domain is None:
        domain = DomainRow(name=DEFAULT_NAME, description="Created at first start")
        db.add(domain)
        await db.flush()
    project = await db.scalar(
        select(ProjectRow).where(
            ProjectRow.domain_id == domain.id, ProjectRow.name == DEFAULT_NAME
        )
    )
    if project is None:
        project = ProjectRow(domain_id=domain.id, name=DEFAULT_NAME, description="")
        db.add(project)
        await db.flush()
    group = await db.scalar(select(ResourceGroupRow).where(ResourceGroupRow.name == DEFAULT_NAME))
    if group is None:
        group = ResourceGroupRow(name=DEFAULT_NAME, description="Nodes with no explicit group")
        db.add(group)
        await db.flush()
        db.add(ResourceGroupProjectRow(resource_group_id=group.id, project_id=project.id))
        await db.flush()
    return domain, project, group


async def create_admin(
    db: AsyncSession,
    *,
    sealer: crypto.Sealer,
    username: str,
    password: str | None,
    email: str | None,
    now: datetime,
) -> Bootstrapped:
    """Create a superadmin in the default domain (member of the default project) with a token."""
    domain, project, _ = await ensure_defaults(db)
    if await db.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = UserRow(
        domain_id=domain.id,
        username=username,
        email=email,
        full_name="Administrator",
        password_hash=crypto.hash_password(password) if password else None,
        role=UserRole.SUPERADMIN,
    )
    db.add(user)
    await db.flush()
    db.add(MembershipRow(project_id=project.id, user_id=user.id, role=ProjectRole.ADMIN))
    await db.flush()
    principal = Principal(user_id=user.id, domain_id=domain.id, role=UserRole.SUPERADMIN)
    issued = await auth_service.create_token(
        db, principal, sealer=sealer, user_id=None, name="bootstrap", expires_at=None, now=now
    )
    return Bootstrapped(user=user, token=issued.token)


async def has_superadmin(db: AsyncSession) -> bool:
    found = await db.scalar(select(UserRow.id).where(UserRow.role == UserRole.SUPERADMIN).limit(1))
    return found is not None
