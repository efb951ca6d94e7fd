"""Builders that create tenants and credentials through the real services, so tests arrange a
world in a few lines. Names are unique per call, so tests never collide and need no cleanup."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from manager.auth.crypto import Sealer
from manager.auth.principal import Principal
from manager.config import ManagerConfig
from manager.db.engine import DbFactory, create_db_factory, create_engine
from manager.db.models import DomainRow, MembershipRow, ProjectRole, ProjectRow, UserRole, UserRow
from manager.services import auth as auth_service


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Actor:
    user: UserRow
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class World:
    def __init__(self, db_factory: DbFactory, sealer: Sealer) -> None:
        self.db_factory = db_factory
        self.sealer = sealer

    async def domain(self) -> DomainRow:
        async with self.db_factory() as db, db.begin():
            row = DomainRow(name=unique("dom"), description="")
            db.add(row)
        return row

    async def project(self, domain: DomainRow) -> ProjectRow:
        async with self.db_factory() as db, db.begin():
            row = ProjectRow(domain_id=domain.id, name=unique("proj"), description="")
            db.add(row)
        return row

    async def actor(
        self,
        domain: DomainRow,
        *,
        role: UserRole = UserRole.USER,
        projects: dict[uuid.UUID, ProjectRole] | None = None,
        password: str | None = None,
    ) -> Actor:
        from manager.auth import crypto

        async with self.db_factory() as db, db.begin():
            user = UserRow(
                domain_id=domain.id,
                username=unique("user"),
                full_name="",
                role=role,
                password_hash=crypto.hash_password(password) if password else None,
            )
            db.add(user)
            await db.flush()
            for project_id, project_role in (projects or {}).items():
                db.add(MembershipRow(project_id=project_id, user_id=user.id, role=project_role))
            await db.flush()
            principal = Principal(user_id=user.id, domain_id=domain.id, role=role)
            issued = await auth_service.create_token(
                db,
                principal,
                sealer=self.sealer,
                user_id=None,
                name="test",
                expires_at=None,
                now=datetime.now(UTC),
            )
        return Actor(user=user, token=issued.token)


@pytest.fixture(scope="session")
async def world(manager_config: ManagerConfig) -> AsyncIterator[World]:
    engine = create_engine(manager_config.db_url.get_secret_value(), pool_size=2)
    yield World(create_db_factory(engine), Sealer(manager_config.secret_key.get_secret_value()))
    await engine.dispose()
