"""Schema migrations: empty → head, head → base → head, and an upgrade of a populated database."""

from __future__ import annotations

import uuid

import asyncpg  # type: ignore[import-untyped]
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from manager.db import migrate
from manager.db.engine import normalize_url
from manager.db.models import Base
from tests.conftest import create_database, drop_database


def _revisions() -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_upgrade_from_empty_then_down_to_base_and_up_again(pg_admin_url: str) -> None:
    name = f"berth_mig_{uuid.uuid4().hex[:8]}"
    url = await create_database(pg_admin_url, name)
    try:
        assert await migrate.current(url) is None
        await migrate.upgrade(url)
        head = _revisions()[-1]
        assert await migrate.current(url) == head
        await migrate.downgrade(url, "base")
        assert await migrate.current(url) is None
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename <> 'alembic_version'"
            )
            types = await conn.fetch("SELECT typname FROM pg_type WHERE typtype = 'e'")
        finally:
            await conn.close()
        assert tables == [] and types == []
        await migrate.upgrade(url)
        assert await migrate.current(url) == head
    finally:
        await drop_database(pg_admin_url, name)


async def test_a_populated_database_upgrades_one_revision_at_a_time(pg_admin_url: str) -> None:
    """Data written at the first revision survives every later revision up to head."""
    name = f"berth_mig_{uuid.uuid4().hex[:8]}"
    url = await create_database(pg_admin_url, name)
    revisions = _revisions()
    try:
        await migrate.upgrade(url, revisions[0])
        conn = await asyncpg.connect(url)
        try:
            domain_id = uuid.uuid4()
            await conn.execute(
                "INSERT INTO domains (id, name, description, is_active) "
                "VALUES ($1, 'd', '', true)",
                domain_id,
            )
            await conn.execute(
                "INSERT INTO users (id, domain_id, username, full_name, role, is_active) "
                "VALUES ($1, $2, 'u', '', 'superadmin', true)",
                uuid.uuid4(),
                domain_id,
            )
        finally:
            await conn.close()
        for revision in revisions[1:]:
            await migrate.upgrade(url, revision)
        await migrate.upgrade(url)
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM users WHERE username='u'") == 1
        finally:
            await conn.close()
    finally:
        await drop_database(pg_admin_url, name)


async def test_the_migrations_build_exactly_the_schema_the_models_describe(
    manager_db_url: str,
) -> None:
    """A model change without a revision (or a revision that drifts from the models) fails."""
    engine = create_async_engine(normalize_url(manager_db_url))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
    finally:
        await engine.dispose()
    assert diff == []
