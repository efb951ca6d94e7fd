"""Engine and DB-handle factories. Built by the composition root; nothing connects at import."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DbFactory = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(normalize_url(url), pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Make the managers survive a PostgreSQL restart without manual action, at no cost per
    request. When the server goes away it closes every backend socket; asyncpg sees the EOF
    and marks its connection closed, so a dead pooled connection is known without the round
    trip `pool_pre_ping` spends on every checkout (a quarter of a simple GET's database
    time). Raising DisconnectionError makes the pool discard it and connect afresh. A
    connection that died without the socket closing fails its first statement, and
    SQLAlchemy then invalidates the whole pool."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise exc.DisconnectionError("the pooled connection was closed by the server")


def create_db_factory(engine: AsyncEngine) -> DbFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def create_read_factory(engine: AsyncEngine) -> DbFactory:
    """DB handles for GET requests. Each statement runs on its own (autocommit): a read
    needs no BEGIN and COMMIT, which were two of a simple GET's four round trips. GET
    handlers never write (HTTP GET is safe), and each reads one consistent row or page."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
    )


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql prints them); pick the asyncpg driver."""
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    return url
