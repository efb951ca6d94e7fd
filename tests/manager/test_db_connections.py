"""How the manager's API uses its database connections: pooled connections that the server
closed are replaced without failing a request, and GET requests read without a transaction."""

from __future__ import annotations

import time
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from manager.state import STATE_KEY
from tests.factories import World


@pytest.fixture
async def alice(world: World) -> Any:
    return await world.actor(await world.domain())


async def _backend_pids(api: Any) -> set[int]:
    """The server pids behind every connection the app's pool holds now."""
    state = api.server.app[STATE_KEY]
    pool = state.db_factory.kw["bind"].sync_engine.pool
    pids = set()
    held = []
    try:
        for _ in range(pool.checkedin()):
            conn = await state.db_factory.kw["bind"].connect()
            held.append(conn)
            pids.add(await conn.scalar(text("SELECT pg_backend_pid()")))
    finally:
        for conn in held:
            await conn.close()
    return pids


async def test_connections_the_server_closed_are_replaced_without_failing_requests(
    api: Any, alice: Any, pg_admin_url: str
) -> None:
    """What PostgreSQL does to every connection when it restarts, done to this app's pool:
    the next requests succeed on fresh connections (no 500, no 503, no manual action)."""
    for _ in range(3):  # fill the pool with a few connections
        assert (await api.get("/api/v1/auth/me", headers=alice.headers)).status == 200
    pids = await _backend_pids(api)
    assert pids
    admin = await asyncpg.connect(pg_admin_url)
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", pids)
        deadline = time.monotonic() + 10
        while await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", list(pids)
        ):
            assert time.monotonic() < deadline, "the backends did not exit"
    finally:
        await admin.close()
    for method, path in [("GET", "/api/v1/auth/me"), ("POST", "/api/v1/tokens")] * 3:
        resp = await api.request(method, path, headers=alice.headers, json={"name": "t"})
        assert resp.status in (200, 201), await resp.text()
    assert not (await _backend_pids(api)) & pids, "every dead connection was replaced"


async def test_get_requests_read_outside_a_transaction(api: Any) -> None:
    """GETs run in autocommit: no BEGIN/COMMIT round trips. now() is the start of the
    current transaction, so it moves between statements only when each is its own."""
    state = api.server.app[STATE_KEY]

    async def two_nows(factory: Any) -> tuple[Any, Any]:
        async with factory() as db, db.begin():
            first = await db.scalar(text("SELECT now()"))
            await db.execute(text("SELECT pg_sleep(0.01)"))
            return first, await db.scalar(text("SELECT now()"))

    first, second = await two_nows(state.read_factory)
    assert second > first, "each read statement is its own transaction"
    first, second = await two_nows(state.db_factory)
    assert second == first, "writes keep one transaction across statements"
