"""The idle-culling loop step against the real database: what it culls, what it keeps, and
what it records."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, update

from manager.config import ManagerConfig
from manager.db.models import SessionHistoryRow, SessionRow
from manager.lifecycle.session import Reason, SessionStatus, SessionType
from manager.reconcilers.context import LoopContext
from manager.reconcilers.idle import idle_step
from manager.services.app_proxy import app_token
from tests.factories import World
from tests.notebooks.conftest import Rows, Tenant, Woken, port


async def _lease(world: World, session_id: uuid.UUID) -> None:
    async with world.db_factory() as db, db.begin():
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(
                lease_token=uuid.uuid4(),
                lease_expires_at=datetime.now(UTC) + timedelta(minutes=5),
            )
        )


async def test_idle_interactive_session_is_culled(
    loop_ctx: LoopContext, rows: Rows, tenant: Tenant, world: World
) -> None:
    node = await rows.agent()
    idle = await rows.session(
        tenant, node_id=node.id, ports=[], idle_timeout_s=60, started_ago_s=3600
    )
    await _lease(world, idle.id)
    await idle_step(loop_ctx)

    row = await rows.get(idle.id)
    assert row.status is SessionStatus.TERMINATING
    assert row.status_reason == Reason.IDLE_TIMEOUT
    assert "idle for" in row.status_message and "mounted folders is kept" in row.status_message
    assert row.lease_token is None and row.lease_expires_at is None  # the terminate loop's now
    assert isinstance(loop_ctx.wake, Woken) and "terminate" in loop_ctx.wake.names
    async with world.db_factory() as db:
        history = (
            await db.scalars(
                select(SessionHistoryRow.reason).where(SessionHistoryRow.session_id == idle.id)
            )
        ).all()
    assert Reason.IDLE_TIMEOUT in history


async def test_busy_or_exempt_sessions_are_kept(
    loop_ctx: LoopContext, rows: Rows, tenant: Tenant
) -> None:
    gpu = f"fake-cuda-{uuid.uuid4().hex[:6]}"
    node = await rows.agent(devices=[{"id": gpu, "utilization_pct": 87.0}])
    recent = await rows.session(
        tenant,
        node_id=node.id,
        ports=[],
        idle_timeout_s=60,
        started_ago_s=3600,
        last_activity_ago_s=5,
    )
    batch = await rows.session(
        tenant,
        node_id=node.id,
        ports=[],
        idle_timeout_s=60,
        started_ago_s=3600,
        type_=SessionType.BATCH,
    )
    no_timeout = await rows.session(tenant, node_id=node.id, ports=[], started_ago_s=3600)
    on_gpu = await rows.session(
        tenant,
        node_id=node.id,
        ports=[],
        idle_timeout_s=60,
        started_ago_s=3600,
        devices={"cuda.device": [gpu]},
    )
    before = datetime.now(UTC)
    await idle_step(loop_ctx)

    for session in (recent, batch, no_timeout, on_gpu):
        assert (await rows.get(session.id)).status is SessionStatus.RUNNING
    # The busy accelerator counts as activity, so the next cycles skip the session cheaply.
    last = (await rows.get(on_gpu.id)).last_activity_at
    assert last is not None and last >= before


@pytest.fixture
async def fake_jupyter(aiohttp_server: Any) -> Any:
    """Jupyter's kernels API as the culler reads it; `state` decides what it answers."""
    seen: dict[str, Any] = {"auth": [], "kernels": []}

    async def kernels(request: web.Request) -> web.Response:
        seen["auth"].append(request.headers.get("Authorization"))
        seen["path"] = request.path
        return web.json_response(seen["kernels"])

    app = web.Application()
    app.router.add_get("/apps/{sid}/jupyter/api/kernels", kernels)
    server = await aiohttp_server(app, host="127.0.0.1")
    return server, seen


async def test_jupyter_kernels_keep_a_session(
    loop_ctx: LoopContext,
    rows: Rows,
    tenant: Tenant,
    fake_jupyter: Any,
    manager_config: ManagerConfig,
) -> None:
    server, seen = fake_jupyter
    node = await rows.agent()
    session = await rows.session(
        tenant,
        node_id=node.id,
        ports=[port("jupyter", int(server.port))],
        idle_timeout_s=60,
        started_ago_s=3600,
        last_activity_ago_s=3000,
    )
    seen["kernels"] = [
        {"id": "k", "execution_state": "busy", "last_activity": "2020-01-01T00:00:00Z"}
    ]
    await idle_step(loop_ctx)
    assert (await rows.get(session.id)).status is SessionStatus.RUNNING
    token = app_token(manager_config.secret_key.get_secret_value(), session.id)
    assert seen["auth"][-1] == f"token {token}"
    assert seen["path"] == f"/apps/{session.id}/jupyter/api/kernels"

    # Idle kernel that ran something 10 s ago: kept, and that time is recorded.
    async with rows.world.db_factory() as db, db.begin():
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == session.id)
            .values(last_activity_at=datetime.now(UTC) - timedelta(seconds=3000))
        )
    ran_at = datetime.now(UTC) - timedelta(seconds=10)
    seen["kernels"] = [{"id": "k", "execution_state": "idle", "last_activity": ran_at.isoformat()}]
    await idle_step(loop_ctx)
    row = await rows.get(session.id)
    assert row.status is SessionStatus.RUNNING
    assert row.last_activity_at == ran_at

    # Idle kernel, nothing for longer than the timeout: culled.
    async with rows.world.db_factory() as db, db.begin():
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == session.id)
            .values(last_activity_at=datetime.now(UTC) - timedelta(seconds=3000))
        )
    old = datetime.now(UTC) - timedelta(seconds=2000)
    seen["kernels"] = [{"id": "k", "execution_state": "idle", "last_activity": old.isoformat()}]
    await idle_step(loop_ctx)
    assert (await rows.get(session.id)).status is SessionStatus.TERMINATING


async def test_two_managers_cull_a_session_once(
    loop_ctx: LoopContext, rows: Rows, tenant: Tenant, world: World
) -> None:
    node = await rows.agent()
    idle = await rows.session(
        tenant, node_id=node.id, ports=[], idle_timeout_s=30, started_ago_s=600
    )
    await asyncio.gather(idle_step(loop_ctx), idle_step(loop_ctx), idle_step(loop_ctx))
    async with world.db_factory() as db:
        reasons = (
            await db.scalars(
                select(SessionHistoryRow.reason).where(SessionHistoryRow.session_id == idle.id)
            )
        ).all()
    assert list(reasons).count(Reason.IDLE_TIMEOUT) == 1
    assert (await rows.get(idle.id)).status is SessionStatus.TERMINATING
