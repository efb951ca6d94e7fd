"""The app proxy: `/apps/{session}/{service}/...` reaches a service port published by a session's
container, over HTTP and WebSocket, for the session's owner (and project admins) only.

The app inside the container (JupyterLab) runs with its own per-session token, derived from the
manager's secret key so every replica computes the same one; the proxy injects it, so the user
never sees it and nobody who bypasses the proxy gets in. Apps are served under their full prefix
(`BERTH_APP_PREFIX` + service name), so paths are forwarded unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from multidict import CIMultiDict
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from manager.auth.principal import Principal
from manager.db.engine import DbFactory
from manager.db.models import AgentRow, SessionContainerRow, SessionRow
from manager.errors import Conflict, Forbidden, NotFound, Unavailable
from manager.lifecycle.session import TERMINAL, SessionStatus

log = logging.getLogger("berth.manager.apps")

# Environment the manager gives every session container (see `app_env`).
APP_TOKEN_ENV = "BERTH_APP_TOKEN"
JUPYTER_TOKEN_ENV = "JUPYTER_TOKEN"
APP_PREFIX_ENV = "BERTH_APP_PREFIX"
SESSION_ID_ENV = "BERTH_SESSION_ID"

ACTIVITY_INTERVAL_S = 10.0
_STARTING = frozenset({SessionStatus.PENDING, SessionStatus.SCHEDULED, SessionStatus.PREPARING})
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
# Credentials meant for Berth never reach the app.
_BERTH_HEADERS = frozenset({"authorization", "cookie", "x-csrf-token"})
_WS_HANDSHAKE = frozenset(
    {
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    }
)


def app_token(secret_key: str, session_id: uuid.UUID) -> str:
    """The token of the apps of one session: HMAC-SHA256(secret_key, session id), hex."""
    mac = hmac.new(secret_key.encode(), b"berth-app-token\x00" + session_id.bytes, hashlib.sha256)
    return mac.hexdigest()


def app_prefix(session_id: uuid.UUID) -> str:
    return f"/apps/{session_id}/"


def app_env(secret_key: str, session_id: uuid.UUID) -> dict[str, str]:
    """Variables to add to every container of a session at dispatch (caller env wins never)."""
    token = app_token(secret_key, session_id)
    return {
        APP_TOKEN_ENV: token,
        JUPYTER_TOKEN_ENV: token,
        APP_PREFIX_ENV: app_prefix(session_id),
        SESSION_ID_ENV: str(session_id),
    }


class AppStarting(Unavailable):
    code = "app_starting"


@dataclass(frozen=True)
class AppTarget:
    session_id: uuid.UUID
    service: str
    host: str
    port: int
    token: str

    def url(self, path_qs: str, *, scheme: str = "http") -> URL:
        """The upstream URL, with the client's encoding kept byte for byte (Jupyter file paths
        may hold %2F and friends)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return URL(f"{scheme}://{host}:{self.port}{path_qs}", encoded=True)


def may_open(principal: Principal, row: SessionRow) -> bool:
    return row.user_id == principal.user_id or principal.is_project_admin_of(
        project_id=row.project_id, domain_id=row.domain_id
    )


async def resolve_target(
    db: AsyncSession,
    principal: Principal,
    *,
    session_id: uuid.UUID,
    service: str,
    secret_key: str,
) -> AppTarget:
    """Where `service` of the session listens, if the caller may open it and it is up."""
    row = await db.get(SessionRow, session_id)
    if row is None:
        raise NotFound("no such session", code="app_not_found")
    if not may_open(principal, row):
        raise Forbidden(
            "only the session's owner or an admin of its project may open its apps",
            code="app_forbidden",
        )
    if row.status in TERMINAL or row.status is SessionStatus.TERMINATING:
        raise Conflict(
            f"session {row.name} is {row.status.value}; its apps are gone", code="session_ended"
        )
    declared = [p.get("name") for p in row.ports or []]
    if row.status in _STARTING:
        if declared and service not in declared:
            raise _no_such_service(service, declared)
        raise AppStarting(
            f"session {row.name} is {row.status.value}; {service} will answer once its "
            "container runs. Retry in a few seconds.",
        )
    containers = (
        await db.scalars(
            select(SessionContainerRow)
            .where(
                SessionContainerRow.session_id == row.id,
                SessionContainerRow.attempt == row.attempt,
            )
            .order_by(SessionContainerRow.index)
        )
    ).all()
    for container in containers:
        for port in container.ports or []:
            if port.get("name") == service:
                host = str(port.get("host_ip") or "")
                if host in ("", "0.0.0.0", "::"):
                    host = await _node_host(db, container.node_id)
                return AppTarget(
                    session_id=row.id,
                    service=service,
                    host=host,
                    port=int(port["host_port"]),
                    token=app_token(secret_key, row.id),
                )
    published = sorted({str(p.get("name")) for c in containers for p in c.ports or []})
    raise _no_such_service(service, published or [str(d) for d in declared])


def _no_such_service(service: str, offered: list[Any]) -> NotFound:
    names = ", ".join(str(o) for o in offered) or "none"
    return NotFound(
        f"this session has no service {service!r} (it offers: {names})", code="app_not_found"
    )


async def _node_host(db: AsyncSession, node_id: str) -> str:
    url = await db.scalar(select(AgentRow.advertised_url).where(AgentRow.id == node_id))
    host = urlsplit(url or "").hostname
    if not host:
        raise AppStarting("the node running this session is not reachable yet; retry shortly")
    return host


def counts_as_activity(method: str, tail: str) -> bool:
    """Whether a proxied request shows a person at work. JupyterLab polls `api/...` with GETs
    while a tab is merely open (kernel list, file browser refresh, status), so those do not keep
    a session alive; everything else (pages, saves, executions over WebSocket) does."""
    return not (method in ("GET", "HEAD") and tail.startswith("api/"))


class ActivityRecorder:
    """Writes `sessions.last_activity_at` at most once per session per `interval_s` on this
    replica, so busy apps do not turn into a DB write per request."""

    def __init__(
        self,
        db_factory: DbFactory,
        *,
        clock: Callable[[], datetime],
        interval_s: float = ACTIVITY_INTERVAL_S,
    ) -> None:
        self._db_factory = db_factory
        self._clock = clock
        self.interval_s = interval_s
        self._last: dict[uuid.UUID, float] = {}
        self.writes = 0

    async def touch(self, session_id: uuid.UUID) -> bool:
        mono = time.monotonic()
        last = self._last.get(session_id)
        if last is not None and mono - last < self.interval_s:
            return False
        self._last[session_id] = mono
        if len(self._last) > 10_000:
            self._last = {k: v for k, v in self._last.items() if mono - v < self.interval_s}
        now = self._clock()
        try:
            async with self._db_factory() as db, db.begin():
                await db.execute(
                    update(SessionRow)
                    .where(
                        SessionRow.id == session_id,
                        or_(
                            SessionRow.last_activity_at.is_(None),
                            SessionRow.last_activity_at < now,
                        ),
                    )
                    .values(last_activity_at=now)
                )
            self.writes += 1
        except Exception:
            # Activity is advisory: a failed write must never break the user's connection.
            log.warning("could not record app activity", exc_info=True)
        return True


class AppProxy:
    """Forwards requests to app targets. One per manager process (see `app_proxy_ctx`)."""

    def __init__(self, activity: ActivityRecorder, *, session_cookie: str) -> None:
        self.activity = activity
        self.session_cookie = session_cookie
        self._client: aiohttp.ClientSession | None = None

    @property
    def client(self) -> aiohttp.ClientSession:
        if self._client is None:
            # No total/read timeout: notebooks stream and long-poll; the cookie jar stays empty
            # so one user's app cookies never travel with another user's request.
            # No connection limit either: every open notebook WebSocket holds one.
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def forward(
        self, request: web.Request, target: AppTarget, *, tail: str
    ) -> web.StreamResponse:
        if counts_as_activity(request.method, tail) or _is_websocket(request):
            await self.activity.touch(target.session_id)
        if _is_websocket(request):
            return await self._forward_ws(request, target)
        return await self._forward_http(request, target)

    async def _forward_http(self, request: web.Request, target: AppTarget) -> web.StreamResponse:
        headers = _upstream_headers(request, target, drop_cookie=self.session_cookie)
        data: Any = request.content if request.body_exists else None
        if request.content_length is not None:
            headers["Content-Length"] = str(request.content_length)
        try:
            upstream = await self.client.request(
                request.method,
                target.url(request.rel_url.raw_path_qs),
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise _starting(target, exc) from None
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                response.headers.add(name, value)
        if upstream.content_length is not None and request.method != "HEAD":
            response.content_length = upstream.content_length
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientPayloadError) as exc:
            # One side went away mid-stream (tab closed, app restarted): nothing to tell anyone.
            log.info("app response cut short", extra={"error": repr(exc)})
        finally:
            upstream.release()
        return response

    async def _forward_ws(self, request: web.Request, target: AppTarget) -> web.StreamResponse:
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        headers = _upstream_headers(request, target, drop_cookie=self.session_cookie)
        for name in list(headers):
            if name.lower() in _WS_HANDSHAKE:
                del headers[name]
        try:
            upstream = await self.client.ws_connect(
                target.url(request.rel_url.raw_path_qs, scheme="ws"),
                headers=headers,
                protocols=offered,
                autoping=False,
                autoclose=False,
                heartbeat=None,
                max_msg_size=0,
                compress=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            return web.json_response(
                {
                    "code": "app_refused_websocket",
                    "message": f"{target.service} refused the WebSocket ({exc.status})",
                },
                status=exc.status if 400 <= exc.status < 500 else 502,
            )
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise _starting(target, exc) from None
        client = web.WebSocketResponse(
            protocols=[upstream.protocol] if upstream.protocol else (),
            autoping=False,
            autoclose=False,
            heartbeat=None,
            max_msg_size=0,
        )
        try:
            await client.prepare(request)
            to_app = asyncio.create_task(self._pump(client, upstream, target, from_user=True))
            to_user = asyncio.create_task(self._pump(upstream, client, target, from_user=False))
            _done, pending = await asyncio.wait({to_app, to_user}, return_when="FIRST_COMPLETED")
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        finally:
            await upstream.close()
            if not client.closed:
                await client.close()
        return client

    async def _pump(self, src: Any, dst: Any, target: AppTarget, *, from_user: bool) -> None:
        while True:
            msg = await src.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if from_user:
                    await self.activity.touch(target.session_id)
                if msg.type is WSMsgType.TEXT:
                    await dst.send_str(msg.data)
                else:
                    await dst.send_bytes(msg.data)
            elif msg.type is WSMsgType.PING:
                await dst.ping(msg.data)
            elif msg.type is WSMsgType.PONG:
                await dst.pong(msg.data)
            elif msg.type is WSMsgType.CLOSE:
                with contextlib.suppress(Exception):
                    await dst.close(code=msg.data or 1000, message=(msg.extra or "").encode())
                with contextlib.suppress(Exception):
                    await src.close()
                return
            else:  # CLOSING, CLOSED, ERROR: the other side is gone
                return


def _is_websocket(request: web.Request) -> bool:
    return (
        request.headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in request.headers.get("Connection", "").lower()
    )


def _upstream_headers(
    request: web.Request, target: AppTarget, *, drop_cookie: str
) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in _BERTH_HEADERS:
            continue
        headers.add(name, value)
    # The app keeps its own cookies (Jupyter's _xsrf); Berth's login cookie stays with Berth.
    cookies = "; ".join(f"{k}={v}" for k, v in request.cookies.items() if k != drop_cookie)
    if cookies:
        headers["Cookie"] = cookies
    # The browser's Host: apps that compare Origin with Host (Jupyter's WebSocket check) agree.
    headers["Host"] = request.host
    headers["Authorization"] = f"token {target.token}"
    forwarded_for = request.headers.get("X-Forwarded-For")
    peer = request.remote or ""
    headers["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Prefix"] = f"{app_prefix(target.session_id)}{target.service}/"
    return headers


def _starting(target: AppTarget, exc: BaseException) -> AppStarting:
    return AppStarting(
        f"{target.service} is starting (nothing answers on its port yet: "
        f"{type(exc).__name__}); retry in a few seconds",
        details={"session_id": str(target.session_id), "service": target.service},
    )
