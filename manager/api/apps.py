"""The app proxy's routes: `/apps/{session_id}/{service}/...` for every method, HTTP and WebSocket.

These routes are PUBLIC to the route table because the API's cookie rule (an X-CSRF-Token header
on every unsafe request) cannot hold for apps like JupyterLab that never send it. The handler
authenticates itself, before anything reaches a container: a Bearer token, or the login cookie
with a same-origin check on unsafe methods (the cookie is also SameSite=Lax).

The composition root wires this in: APP_ROUTES go into manager/api/routes.py, and
`install_app_proxy(app)` runs in `create_app` after the state is set.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from manager.api.framework import Call, Route
from manager.api.middleware import SAFE_METHODS, SESSION_COOKIE
from manager.api.permissions import Permission as P
from manager.auth.principal import Principal
from manager.errors import Forbidden, Unauthenticated
from manager.services import auth as auth_service
from manager.services.app_proxy import ActivityRecorder, AppProxy, resolve_target
from manager.state import STATE_KEY

APP_PROXY_KEY = web.AppKey("berth_app_proxy", AppProxy)
APPS = "/apps"


def install_app_proxy(app: web.Application) -> None:
    """One AppProxy (its HTTP client opens on first use) per manager process, closed on cleanup.
    Call before the app starts, after `app[STATE_KEY]` is set."""
    state = app[STATE_KEY]
    app[APP_PROXY_KEY] = AppProxy(
        ActivityRecorder(state.db_factory, clock=state.clock), session_cookie=SESSION_COOKIE
    )

    async def close_proxy(app: web.Application) -> AsyncIterator[None]:
        yield
        await app[APP_PROXY_KEY].close()

    app.cleanup_ctx.append(close_proxy)


async def open_app(call: Call) -> web.StreamResponse:
    request = call.request
    state = request.app[STATE_KEY]
    # One short transaction for both checks; none stays open while the app answers.
    async with state.db_factory() as db, db.begin():
        principal = await authenticate_app_request(request, db, now=state.clock())
        target = await resolve_target(
            db,
            principal,
            session_id=call.path_uuid("session_id"),
            service=call.path("service"),
            secret_key=state.config.secret_key.get_secret_value(),
        )
    return await request.app[APP_PROXY_KEY].forward(request, target, tail=call.path("tail"))


async def app_root(call: Call) -> web.StreamResponse:
    """`/apps/{session}/{service}` → the same path with a trailing slash (apps use relative
    links)."""
    call.path_uuid("session_id")
    location = call.request.rel_url.raw_path + "/"
    if call.request.rel_url.query_string:
        location += "?" + call.request.rel_url.query_string
    raise web.HTTPTemporaryRedirect(location)


async def authenticate_app_request(
    request: web.Request, db: AsyncSession, *, now: datetime
) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return await auth_service.authenticate_bearer(db, token=value.strip(), now=now)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal, _csrf = await auth_service.authenticate_cookie(db, cookie_value=cookie, now=now)
        if request.method not in SAFE_METHODS and not _same_origin(request):
            raise Forbidden(
                "cross-site request to an app refused (Origin does not match this host)",
                code="csrf_failed",
            )
        return principal
    raise Unauthenticated(
        "log in to open this app (browser login, or 'Authorization: Bearer <token>')",
        code="unauthenticated",
    )


def _same_origin(request: web.Request) -> bool:
    """Unsafe requests carrying the login cookie must come from a page of this host. Browsers
    send Origin on such requests (Referer as a fallback); no header at all is refused."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == request.host.lower()


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

APP_ROUTES = [
    *(
        Route(
            method,
            f"{APPS}/{{session_id}}/{{service}}/{{tail:.*}}",
            open_app,
            P.PUBLIC,  # authenticated by the handler itself; see the module docstring
            "Open a session's app (reverse proxy, HTTP and WebSocket)",
            response="text",
            transactional=False,
            tags=("apps",),
        )
        for method in _METHODS
    ),
    Route(
        "GET",
        f"{APPS}/{{session_id}}/{{service}}",
        app_root,
        P.PUBLIC,
        "Redirect to the app's root (trailing slash)",
        response="text",
        transactional=False,
        tags=("apps",),
    ),
]
