"""Engine and DB-handle factory. Built by the composition root; nothing connects at import."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

DbFactory = async_sessionmaker[AsyncSession]


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    # pool_pre_ping makes the managers survive a PostgreSQL restart without manual action: a dead
    # pooled connection is detected and replaced on checkout instead of failing the request.
    return create_async_engine(
        normalize_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def create_db_factory(engine: AsyncEngine) -> DbFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def normalize_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql prints them); pick the asyncpg driver."""
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    return url
