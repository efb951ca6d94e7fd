"""Schema migrations through alembic, driven from code (`berth manager migrate`) and tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from manager.db.engine import normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Serializes concurrent `migrate` calls (two managers starting at once) on one database.
_ADVISORY_LOCK_ID = 0x6265727468  # "berth"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def upgrade(url: str, revision: str = "head") -> None:
    await _run(url, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(url: str, revision: str = "base") -> None:
    await _run(url, lambda cfg: command.downgrade(cfg, revision))


async def current(url: str) -> str | None:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            if not exists:
                return None
            return await conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()


async def _run(url: str, action: object) -> None:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_advisory_lock({_ADVISORY_LOCK_ID})"))
            try:

                def run_sync(sync_conn: object) -> None:
                    cfg = alembic_config(url)
                    cfg.attributes["connection"] = sync_conn
                    action(cfg)  # type: ignore[operator]

                await conn.run_sync(run_sync)
                await conn.commit()
            finally:
                await conn.execute(text(f"SELECT pg_advisory_unlock({_ADVISORY_LOCK_ID})"))
                await conn.commit()
    finally:
        await engine.dispose()


def upgrade_sync(url: str) -> None:
    asyncio.run(upgrade(url))
