"""The researcher's journey through the real API: create an interactive JupyterLab session with a
fake GPU, open it through the app proxy (the proxy injects the app's token), run `1+1` on a kernel
over the proxied WebSocket, be refused as another user, terminate."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import Stack, dump_logs, wait_for
from tests.e2e.test_sessions import finished

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _execute(code: str) -> tuple[str, str]:
    msg_id = uuid.uuid4().hex
    header = {
        "msg_id": msg_id,
        "username": "e2e",
        "session": uuid.uuid4().hex,
        "msg_type": "execute_request",
        "version": "5.3",
        "date": datetime.now(UTC).isoformat(),
    }
    content = {
        "code": code,
        "silent": False,
        "store_history": False,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
    }
    return msg_id, json.dumps(
        {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
    )


async def _result(ws: aiohttp.ClientWebSocketResponse, parent: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            msg = await ws.receive()
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            if (
                data.get("parent_header", {}).get("msg_id") == parent
                and data["msg_type"] == "execute_result"
            ):
                return dict(data)


async def test_a_notebook_session_opens_through_the_app_proxy(stack: Stack) -> None:
    async with stack.client() as api:
        created = await api.post(
            "/api/v1/sessions",
            json={
                "image": "berth/jupyterlab:4",
                "type": "interactive",
                "resources": {"cpu": 1, "mem": "1g", "cuda.device": 1},
            },
        )
        assert created.status_code == 201, created.text
        session = created.json()
        try:
            await wait_for(
                api,
                f"/api/v1/sessions/{session['id']}",
                lambda s: s["status"] == "running",
                timeout_s=90,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{dump_logs(stack)}") from None
        other = (
            await api.post("/api/v1/users", json={"username": f"u-{uuid.uuid4().hex[:6]}"})
        ).json()
        other_token = (await api.post("/api/v1/tokens", json={"user_id": other["id"]})).json()[
            "token"
        ]

    owner = {"Authorization": f"Bearer {stack.token}"}
    base = f"{stack.url}/apps/{session['id']}/jupyter"
    async with aiohttp.ClientSession() as http:
        deadline = asyncio.get_running_loop().time() + 90
        while True:
            async with http.get(f"{base}/api/status", headers=owner) as resp:
                if resp.status == 200:
                    break
                body = await resp.json(content_type=None)
                assert resp.status == 503 and body["code"] == "app_starting", body
            assert asyncio.get_running_loop().time() < deadline, "JupyterLab never answered"
            await asyncio.sleep(0.5)
        async with http.get(f"{base}/lab", headers=owner) as lab:
            assert lab.status == 200 and "jupyter-config-data" in await lab.text()
        async with http.get(
            f"{base}/lab", headers={"Authorization": f"Bearer {other_token}"}
        ) as r:
            assert r.status in (403, 404)
        async with http.post(f"{base}/api/kernels", json={"name": "python3"}, headers=owner) as r:
            assert r.status == 201, await r.text()
            kernel = (await r.json())["id"]
        channels = f"{base}/api/kernels/{kernel}/channels?session_id={uuid.uuid4().hex}"
        async with http.ws_connect(channels, headers=owner) as ws:
            msg_id, request = _execute("1+1")
            await ws.send_str(request)
            result = await _result(ws, msg_id)
            assert result["content"]["data"]["text/plain"] == "2"
    async with stack.client() as api:
        assert (await api.delete(f"/api/v1/sessions/{session['id']}")).status_code == 200
    done = await finished(stack, session["id"])
    assert done["status"] == "terminated" and done["status_reason"] == "user_terminated"
