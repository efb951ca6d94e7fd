"""Shared fixtures. Services come from scripts/test-services (real PostgreSQL, Redis, etcd and
Docker).

- `pg_admin_url`: the server's maintenance database URL.
- `manager_db_url`: a fresh database for this test session, migrated to head, dropped at the end.
- `manager_config`: a ManagerConfig pointing at it.
- `api`: an in-process manager app behind aiohttp's test client (real DB, real middleware).
- `world`: factories that create domains/projects/users/tokens straight through the services.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from manager.config import ManagerConfig
from manager.db import migrate

pytest_plugins = ["tests.factories"]

# A runner that starts the suite as a background job hands it SIGINT ignored, and every child
# would inherit that; the Ctrl-C tests (berth run, berth up) need children that react to SIGINT
# as under a terminal. A handled signal is reset to the default at exec, so children get it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: run the suite through ./scripts/test (it starts the services)"
        )
    return value


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return _env("BERTH_TEST_PG_ADMIN_DSN")


async def create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def manager_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"berth_t_{uuid.uuid4().hex[:10]}"
    url = await create_database(pg_admin_url, name)
    await migrate.upgrade(url)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture(scope="session")
def manager_config(manager_db_url: str) -> ManagerConfig:
    return ManagerConfig(
        db_url=SecretStr(manager_db_url),
        secret_key=SecretStr("test-secret-key-0123456789"),
        cluster_secret=SecretStr("test-cluster-secret"),
        log_json=False,
        loops=[],  # API tests drive the services; loop tests start their own managers
    )


@pytest.fixture
async def api(aiohttp_client: Any, manager_config: ManagerConfig) -> Any:
    from manager.app import create_app

    return await aiohttp_client(create_app(manager_config))
