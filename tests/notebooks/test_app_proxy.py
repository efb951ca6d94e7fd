"""The app proxy: who gets through (and that refusals never reach the app), what the app sees,
errors while an app starts, activity recording, WebSocket pass-through, and a real container."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from yarl import URL

from manager.api.apps import APP_PROXY_KEY
from manager.config import ManagerConfig
from manager.lifecycle.session import SessionStatus
from manager.services.app_proxy import app_token
from tests.factories import World
from tests.notebooks.conftest import (
    Rows,
    Tenant,
    port,
    remove_container,
    run_container,
    session_env,
    wait_until,
)


class Upstream:
    """A stand-in app on 127.0.0.1 that records what reaches it."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.ws_pings: list[bytes] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self.echo_ws(request)
        body = await request.read()
        self.hits.append(
            {
                "method": request.method,
                "path_qs": request.rel_url.raw_path_qs,
                "headers": dict(request.headers),
                "cookies": dict(request.cookies),
                "body": body.decode(errors="replace"),
            }
        )
        tail = request.match_info["tail"]
        if tail.endswith("/big"):
            return web.Response(body=b"x" * (3 << 20))
        if tail.endswith("/moved"):
            raise web.HTTPFound("/elsewhere")
        response = web.json_response(
            self.hits[-1], status=201 if request.method == "POST" else 200
        )
        response.set_cookie("_xsrf", "from-app")
        return response

    async def echo_ws(self, request: web.Request) -> web.WebSocketResponse:
        self.hits.append({"method": "WS", "headers": dict(request.headers)})
        ws = web.WebSocketResponse(protocols=["v1.test"], autoping=False)
        await ws.prepare(request)
        await ws.ping(b"from-app")
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                if msg.data == "close-me":
                    await ws.close(code=4001, message=b"asked")
                    break
                await ws.send_str("echo:" + msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data[::-1])
            elif msg.type is WSMsgType.PING:
                self.ws_pings.append(msg.data)
                await ws.pong(msg.data)
        return ws


@pytest.fixture
async def upstream(aiohttp_server: Any) -> tuple[Upstream, int]:
    app = Upstream()
    server = await aiohttp_server(app.app(), host="127.0.0.1")
    return app, int(server.port)


async def test_refusals_never_reach_the_app(
    apps_api: Any, rows: Rows, tenant: Tenant, upstream: tuple[Upstream, int]
) -> None:
    app, host_port = upstream
    node = await rows.agent()
    session = await rows.session(tenant, node_id=node.id, ports=[port("web", host_port)])
    path = f"/apps/{session.id}/web/index.html"

    refusals = [
        ({}, 401, "unauthenticated"),
        ({"Authorization": "Bearer nonsense"}, 401, "invalid_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthenticated"),
        (tenant.other.headers, 403, "app_forbidden"),
    ]
    for headers, status, code in refusals:
        for method in ("GET", "POST", "DELETE"):
            resp = await apps_api.request(method, path, headers=headers)
            assert resp.status == status, (method, headers, await resp.text())
            assert (await resp.json())["code"] == code
        ws = await apps_api.get(
            path, headers={**headers, "Upgrade": "websocket", "Connection": "Upgrade"}
        )
        assert ws.status == status
    assert app.hits == []

    for actor in (tenant.owner, tenant.admin, tenant.superadmin):
        resp = await apps_api.get(path, headers=actor.headers)
        assert resp.status == 200, await resp.text()
    assert len(app.hits) == 3

    other_session = uuid.uuid4()
    resp = await apps_api.get(f"/apps/{other_session}/web/", headers=tenant.owner.headers)
    assert (resp.status, (await resp.json())["code"]) == (404, "app_not_found")
    resp = await apps_api.get("/apps/not-a-uuid/web/", headers=tenant.owner.headers)
    assert (resp.status, (await resp.json())["code"]) == (400, "invalid_path")
    resp = await apps_api.get(f"/apps/{session.id}/ssh/", headers=tenant.owner.headers)
    body = await resp.json()
    assert (resp.status, body["code"]) == (404, "app_not_found")
    assert "offers: web" in body["message"]
    assert len(app.hits) == 3


async def test_what_the_app_sees(
    apps_api: Any,
    rows: Rows,
    tenant: Tenant,
    upstream: tuple[Upstream, int],
    manager_config: ManagerConfig,
) -> None:
    app, host_port = upstream
    node = await rows.agent()
    session = await rows.session(tenant, node_id=node.id, ports=[port("web", host_port)])
    base = f"/apps/{session.id}/web"

    raw = f"{base}/api/contents/a%2Fb%20c.ipynb?type=notebook&a=%2F"
    resp = await apps_api.post(
        URL(raw, encoded=True),
        data=b'{"content": 1}',
        headers={**tenant.owner.headers, "Cookie": "theme=dark", "X-CSRF-Token": "ours"},
    )
    assert resp.status == 201
    seen = app.hits[-1]
    assert seen["method"] == "POST"
    assert seen["path_qs"] == raw  # byte for byte: %2F stays encoded
    assert seen["body"] == '{"content": 1}'
    token = app_token(manager_config.secret_key.get_secret_value(), session.id)
    assert seen["headers"]["Authorization"] == f"token {token}"  # never the user's token
    assert tenant.owner.token not in json.dumps(seen)
    assert "X-CSRF-Token" not in seen["headers"]
    assert seen["cookies"] == {"theme": "dark"}
    assert seen["headers"]["Host"] == f"127.0.0.1:{apps_api.port}"
    assert seen["headers"]["X-Forwarded-Prefix"] == f"/apps/{session.id}/web/"
    assert resp.cookies["_xsrf"].value == "from-app"

    big = await apps_api.get(f"{base}/big", headers=tenant.owner.headers)
    assert big.status == 200
    assert await big.read() == b"x" * (3 << 20)

    moved = await apps_api.get(
        f"{base}/moved", headers=tenant.owner.headers, allow_redirects=False
    )
    assert moved.status == 302 and moved.headers["Location"] == "/elsewhere"

    root = await apps_api.get(base + "?x=1", headers=tenant.owner.headers, allow_redirects=False)
    assert root.status == 307 and root.headers["Location"] == base + "/?x=1"


async def test_browser_cookie_login_with_same_origin_check(
    apps_api: Any, rows: Rows, tenant: Tenant, world: World, upstream: tuple[Upstream, int]
) -> None:
    app, host_port = upstream
    user = await world.actor(tenant.domain, password="correct horse battery")
    tenant.owner = user
    node = await rows.agent()
    session = await rows.session(tenant, node_id=node.id, ports=[port("web", host_port)])
    resp = await apps_api.post(
        "/api/v1/auth/login",
        json={"username": user.user.username, "password": "correct horse battery"},
    )
    assert resp.status == 200
    path = f"/apps/{session.id}/web/api/kernels"

    assert (await apps_api.get(path)).status == 200
    assert "berth_session" not in app.hits[-1]["cookies"]  # the login never reaches the app

    hits = len(app.hits)
    refused = await apps_api.post(path, data=b"{}")
    assert refused.status == 403 and (await refused.json())["code"] == "csrf_failed"
    cross = await apps_api.post(path, data=b"{}", headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    assert len(app.hits) == hits
    origin = f"http://127.0.0.1:{apps_api.port}"
    ok = await apps_api.post(path, data=b"{}", headers={"Origin": origin})
    assert ok.status == 201, await ok.text()


async def test_apps_that_are_not_up_say_so(
    apps_api: Any, rows: Rows, tenant: Tenant, world: World
) -> None:
    node = await rows.agent()
    closed = port("web", _closed_port())
    preparing = await rows.session(
        tenant, node_id=node.id, ports=[closed], status=SessionStatus.PREPARING
    )
    resp = await apps_api.get(f"/apps/{preparing.id}/web/", headers=tenant.owner.headers)
    body = await resp.json()
    assert resp.status == 503 and body["code"] == "app_starting"
    assert "preparing" in body["message"]
    resp = await apps_api.get(f"/apps/{preparing.id}/ssh/", headers=tenant.owner.headers)
    assert resp.status == 404  # not a service this session will ever have

    running = await rows.session(tenant, node_id=node.id, ports=[closed])
    resp = await apps_api.get(f"/apps/{running.id}/web/lab", headers=tenant.owner.headers)
    body = await resp.json()
    assert resp.status == 503 and body["code"] == "app_starting"
    assert "starting" in body["message"] and body["request_id"]
    ws = await apps_api.get(
        f"/apps/{running.id}/web/ws",
        headers={**tenant.owner.headers, "Upgrade": "websocket", "Connection": "Upgrade"},
    )
    assert ws.status == 503

    ended = await rows.session(
        tenant, node_id=node.id, ports=[closed], status=SessionStatus.TERMINATED
    )
    resp = await apps_api.get(f"/apps/{ended.id}/web/", headers=tenant.owner.headers)
    assert resp.status == 409 and (await resp.json())["code"] == "session_ended"


async def test_activity_is_recorded_at_most_once_per_interval(
    apps_api: Any, rows: Rows, tenant: Tenant, upstream: tuple[Upstream, int]
) -> None:
    _app, host_port = upstream
    node = await rows.agent()
    session = await rows.session(tenant, node_id=node.id, ports=[port("web", host_port)])
    recorder = apps_api.server.app[APP_PROXY_KEY].activity
    writes = recorder.writes
    base = f"/apps/{session.id}/web"

    assert (await apps_api.get(f"{base}/api/kernels", headers=tenant.owner.headers)).status == 200
    assert (await rows.get(session.id)).last_activity_at is None  # a background poll

    for _ in range(5):
        assert (await apps_api.get(f"{base}/lab", headers=tenant.owner.headers)).status == 200
    first = (await rows.get(session.id)).last_activity_at
    assert first is not None
    assert recorder.writes == writes + 1  # five requests, one write


async def test_websocket_pass_through(
    apps_api: Any, rows: Rows, tenant: Tenant, upstream: tuple[Upstream, int]
) -> None:
    app, host_port = upstream
    node = await rows.agent()
    session = await rows.session(tenant, node_id=node.id, ports=[port("web", host_port)])
    async with apps_api.ws_connect(
        f"/apps/{session.id}/web/api/kernels/k1/channels",
        headers=tenant.owner.headers,
        protocols=["v1.test"],
        autoping=False,
    ) as ws:
        assert ws.protocol == "v1.test"
        ping = await ws.receive(timeout=5)
        assert (ping.type, ping.data) == (WSMsgType.PING, b"from-app")
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "echo:hello"
        await ws.send_bytes(b"\x00\x01\x02")
        assert (await ws.receive(timeout=5)).data == b"\x02\x01\x00"
        await ws.ping(b"from-user")
        pong = await ws.receive(timeout=5)
        assert (pong.type, pong.data) == (WSMsgType.PONG, b"from-user")
        await ws.send_str("close-me")
        closing = await ws.receive(timeout=5)
        assert closing.type is WSMsgType.CLOSE and closing.data == 4001
    assert app.ws_pings == [b"from-user"]
    upgrade = next(h for h in app.hits if h["method"] == "WS")
    assert upgrade["headers"]["Authorization"].startswith("token ")
    assert (await rows.get(session.id)).last_activity_at is not None


async def test_a_real_container_through_the_proxy(
    apps_api: Any, rows: Rows, tenant: Tenant, manager_config: ManagerConfig
) -> None:
    session_id = uuid.uuid4()
    env = session_env(manager_config, session_id)
    # httpd serves the app under its full prefix, as every Berth app must.
    script = (
        'd=/www${BERTH_APP_PREFIX}web; mkdir -p "$d" && echo "hello from $BERTH_SESSION_ID" '
        '> "$d/index.html" && exec httpd -f -p 8888 -h /www'
    )
    container = await run_container(
        "berth/busybox:test", container_port=8888, env=env, command=["sh", "-c", script]
    )
    try:
        node = await rows.agent()
        session = await rows.session(
            tenant,
            node_id=node.id,
            ports=[port("web", container.host_port)],
            session_id=session_id,
        )
        path = f"/apps/{session.id}/web/index.html"
        seen: list[int] = []

        async def answered() -> bool:
            resp = await apps_api.get(path, headers=tenant.owner.headers)
            seen.append(resp.status)
            if resp.status == 503:
                assert (await resp.json())["code"] == "app_starting"
            return resp.status == 200

        await wait_until(answered, timeout_s=20, what="httpd answering through the proxy")
        resp = await apps_api.get(path, headers=tenant.owner.headers)
        assert await resp.text() == f"hello from {session_id}\n"
        assert set(seen) <= {200, 503}
        refused = await apps_api.get(path, headers=tenant.other.headers)
        assert refused.status == 403
    finally:
        await remove_container(container)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the socket goes
