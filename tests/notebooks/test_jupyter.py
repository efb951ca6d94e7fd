"""A real JupyterLab (berth/jupyterlab:4) behind the app proxy: the Lab page, a kernel executing
`1+1` over its WebSocket through the proxy, a second user refused, and the idle culler reading
the kernels API with the session's token."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import update

from manager.api.apps import APP_PROXY_KEY
from manager.config import ManagerConfig
from manager.db.models import SessionRow
from manager.lifecycle.session import SessionStatus
from manager.reconcilers.context import LoopContext
from manager.reconcilers.idle import idle_step
from tests.notebooks.conftest import (
    Container,
    Rows,
    Tenant,
    port,
    remove_container,
    run_container,
    session_env,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "berth/jupyterlab:4"


@pytest.fixture(scope="module")
def jupyter_image() -> str:
    # Idempotent and cached (docker load) after the first build; see scripts/build-images.
    subprocess.run([str(ROOT / "scripts/build-images"), "jupyterlab"], check=True, timeout=900)
    return IMAGE


@pytest.fixture
async def notebook(
    jupyter_image: str, manager_config: ManagerConfig
) -> AsyncIterator[tuple[uuid.UUID, Container]]:
    session_id = uuid.uuid4()
    container = await run_container(
        jupyter_image, container_port=8888, env=session_env(manager_config, session_id)
    )
    try:
        yield session_id, container
    finally:
        await remove_container(container)


def _execute(code: str, session: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "username": "berth-test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": datetime.now(UTC).isoformat(),
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    return msg_id, json.dumps(message)


async def _until_message(
    ws: aiohttp.ClientWebSocketResponse, *, parent: str, msg_type: str, timeout_s: float = 60
) -> dict[str, Any]:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.receive()
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if data.get("parent_header", {}).get("msg_id") == parent:
                if data["msg_type"] == msg_type:
                    return dict(data)


async def _make_idle_candidate(rows: Rows, session_id: uuid.UUID, *, timeout_s: int) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    async with rows.world.db_factory() as db, db.begin():
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id == session_id)
            .values(idle_timeout_s=timeout_s, started_at=old, last_activity_at=old)
        )


async def test_jupyterlab_through_the_proxy(
    apps_api: Any,
    rows: Rows,
    tenant: Tenant,
    notebook: tuple[uuid.UUID, Container],
    loop_ctx: LoopContext,
) -> None:
    session_id, container = notebook
    node = await rows.agent(
        images=[{"name": IMAGE, "labels": {"ai.berth.service-ports": "jupyter:http:8888"}}]
    )
    await rows.session(
        tenant,
        node_id=node.id,
        ports=[port("jupyter", container.host_port)],
        session_id=session_id,
        image=IMAGE,
    )
    base = f"/apps/{session_id}/jupyter"
    owner = tenant.owner.headers
    # Proxied traffic would mark the session active; this test is about what Jupyter says.
    apps_api.server.app[APP_PROXY_KEY].activity.interval_s = 3600

    async def answering() -> bool:
        resp = await apps_api.get(f"{base}/api/status", headers=owner)
        if resp.status == 503:
            assert (await resp.json())["code"] == "app_starting"
        return resp.status == 200

    await wait_until(answering, timeout_s=90, what="JupyterLab answering through the proxy")

    lab = await apps_api.get(f"{base}/lab", headers=owner)
    assert lab.status == 200
    page = await lab.text()
    assert "jupyter-config-data" in page and f"{base}/" in page  # served under its prefix

    # The app itself wants its token: nobody reaches it by going around the proxy.
    async with aiohttp.ClientSession() as direct:
        bare = await direct.get(f"http://127.0.0.1:{container.host_port}{base}/api/kernels")
        assert bare.status == 403

    started = await apps_api.post(f"{base}/api/kernels", json={"name": "python3"}, headers=owner)
    assert started.status == 201, await started.text()
    kernel_id = (await started.json())["id"]
    channels = f"{base}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"

    other = tenant.other.headers
    assert (await apps_api.get(f"{base}/lab", headers=other)).status == 403
    refused = await apps_api.get(
        channels, headers={**other, "Upgrade": "websocket", "Connection": "Upgrade"}
    )
    assert refused.status == 403

    async with apps_api.ws_connect(channels, headers=owner) as ws:
        msg_id, request = _execute("1+1", uuid.uuid4().hex)
        await ws.send_str(request)
        result = await _until_message(ws, parent=msg_id, msg_type="execute_result")
        assert result["content"]["data"]["text/plain"] == "2"

        # While a cell runs, the culler sees a busy kernel and keeps the session.
        await _make_idle_candidate(rows, session_id, timeout_s=2)
        msg_id, request = _execute("import time; time.sleep(4)", uuid.uuid4().hex)
        await ws.send_str(request)
        status = await _until_message(ws, parent=msg_id, msg_type="status")
        assert status["content"]["execution_state"] == "busy"
        await idle_step(loop_ctx)
        row = await rows.get(session_id)
        assert row.status is SessionStatus.RUNNING
        assert row.last_activity_at is not None
        assert row.last_activity_at > datetime.now(UTC) - timedelta(seconds=30)
        await _until_message(ws, parent=msg_id, msg_type="execute_reply")

    # Nothing runs and nobody uses it: culled once the (2 s) timeout has passed.
    await _make_idle_candidate(rows, session_id, timeout_s=2)

    async def culled() -> bool:
        await idle_step(loop_ctx)
        return (await rows.get(session_id)).status is SessionStatus.TERMINATING

    await wait_until(culled, timeout_s=30, what="the idle notebook being culled")
