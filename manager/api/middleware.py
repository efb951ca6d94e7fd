"""Cross-cutting request handling, in order: request id → metrics/log → errors → auth.
The only place where domain errors become HTTP statuses."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncSession

from manager.api.framework import (
    CSRF_TOKEN,
    DB_HANDLE,
    PRINCIPAL,
    REQUEST_ID,
    Route,
    run_wakes,
)
from manager.api.permissions import Permission, role_allows
from manager.auth import crypto
from manager.auth.principal import Principal
from manager.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from manager.metrics import ApiMetrics
from manager.ratelimit import RATE_LIMITS_KEY
from manager.services import auth as auth_service
from manager.state import STATE_KEY, ManagerState

log = logging.getLogger("berth.manager.api")

Next = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_COOKIE = "berth_session"
CSRF_HEADER = "X-CSRF-Token"
DATE_HEADER = "X-Berth-Date"
CLUSTER_HEADER = "X-Berth-Cluster-Secret"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (Unavailable, 503),
    (InvalidRequest, 400),
]
HTTP_CODES = {
    404: "route_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "invalid_request",
}


def error_response(
    *, status: int, code: str, message: str, request_id: str, details: object = None
) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message, "request_id": request_id}
    if details is not None:
        body["details"] = details
    return web.json_response(body, status=status, headers={"X-Request-Id": request_id})


def status_for(exc: DomainError) -> int:
    if exc.code == "validation_error":
        return 422
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def build_middlewares(
    *, metrics: ApiMetrics
) -> list[Callable[..., Awaitable[web.StreamResponse]]]:
    @web.middleware
    async def request_context(request: web.Request, handler: Next) -> web.StreamResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else ""
        request[REQUEST_ID] = request_id or uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            if not response.prepared:
                response.headers["X-Request-Id"] = request[REQUEST_ID]
            return response
        finally:
            route = request.match_info.route.resource
            path = route.canonical if route is not None else "unmatched"
            metrics.latency.labels(request.method, path, str(status)).observe(
                time.perf_counter() - started
            )
            log.info(
                "request",
                extra={
                    "request_id": request[REQUEST_ID],
                    "method": request.method,
                    "path": path,
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )

    @web.middleware
    async def errors(request: web.Request, handler: Next) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        try:
            return await handler(request)
        except DomainError as exc:
            metrics.errors.labels(exc.code).inc()
            return error_response(
                status=status_for(exc),
                code=exc.code,
                message=exc.message,
                request_id=request_id,
                details=exc.details,
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = HTTP_CODES.get(exc.status, "http_error")
            metrics.errors.labels(code).inc()
            message = {
                404: "no such route; see /api/v1/openapi.json",
                405: f"method {request.method} is not allowed here",
                413: "request body is too large",
            }.get(exc.status, exc.reason)
            return error_response(
                status=exc.status, code=code, message=message, request_id=request_id
            )
        except Exception as exc:
            if _database_gone(exc):
                # The pool has dropped the dead connections; the next request reconnects.
                metrics.errors.labels("database_unavailable").inc()
                return error_response(
                    status=503,
                    code="database_unavailable",
                    message="the database connection was lost; retry the request",
                    request_id=request_id,
                )
            metrics.errors.labels("internal_error").inc()
            log.exception("unhandled error", extra={"request_id": request_id})
            return error_response(
                status=500,
                code="internal_error",
                message="internal error; it has been logged",
                request_id=request_id,
            )

    @web.middleware
    async def authenticate(request: web.Request, handler: Next) -> web.StreamResponse:
        route: Route | None = getattr(request.match_info.handler, "berth_route", None)
        if route is None or route.permission is Permission.PUBLIC:
            return await handler(request)
        state = request.app[STATE_KEY]
        if route.permission is Permission.CLUSTER:
            given = request.headers.get(CLUSTER_HEADER, "")
            expected = state.config.cluster_secret.get_secret_value()
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise Unauthenticated("cluster secret missing or wrong", code="bad_cluster_secret")
            return await handler(request)
        if not route.transactional:
            async with state.db_factory() as db, db.begin():
                _authorize(request, route, await _resolve_principal(request, state, db))
            return await handler(request)
        # One transaction for authentication and the handler: half the round trips. GETs
        # read in autocommit, which saves BEGIN and COMMIT.
        factory = state.read_factory if request.method == "GET" else state.db_factory
        async with factory() as db, db.begin():
            request[DB_HANDLE] = db
            _authorize(request, route, await _resolve_principal(request, state, db))
            response = await handler(request)
        run_wakes(request)  # committed: the loops will see the change
        return response

    return [request_context, errors, authenticate]


def _database_gone(exc: Exception) -> bool:
    """PostgreSQL restarted or is unreachable: a retryable 503, not an internal error."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated
    return isinstance(exc, DisconnectionError | ConnectionRefusedError | ConnectionResetError)


def _authorize(request: web.Request, route: Route, principal: Principal) -> None:
    if not role_allows(principal.role, route.permission):
        raise Forbidden(f"your role may not {route.summary.lower()}")
    request[PRINCIPAL] = principal


async def _resolve_principal(
    request: web.Request, state: ManagerState, db: AsyncSession
) -> Principal:
    now = state.clock()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        token = value.strip()
        parsed = crypto.parse_token(token)
        await request.app[RATE_LIMITS_KEY].check_token(parsed[0] if parsed else value[:64])
        key = crypto.sha256(token)
        cached = state.principals.get(key, now=now)
        if cached is not None:
            return cached
        principal, expires_at = await auth_service.authenticate_bearer_with_expiry(
            db, token=token, now=now
        )
        state.principals.put(key, principal, token_expires_at=expires_at)
        return principal
    if scheme == crypto.SIGNATURE_SCHEME:
        fields = _parse_signature_header(value)
        await request.app[RATE_LIMITS_KEY].check_token(fields["Credential"])
        return await auth_service.authenticate_signed(
            db,
            sealer=state.sealer,
            access_key=fields.get("Credential", ""),
            signature=fields.get("Signature", ""),
            date_header=request.headers.get(DATE_HEADER, ""),
            method=request.method,
            path_qs=request.rel_url.raw_path_qs,
            body=await request.read(),
            window_s=state.config.signature_window_s,
            now=now,
        )
    if header:
        raise Unauthenticated(
            "unsupported Authorization scheme; use 'Bearer <token>'", code="invalid_token"
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal, csrf = await auth_service.authenticate_cookie(db, cookie_value=cookie, now=now)
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), csrf.encode()
        ):
            raise Forbidden("missing or wrong X-CSRF-Token header", code="csrf_failed")
        request[CSRF_TOKEN] = csrf
        return principal
    raise Unauthenticated(
        "authentication required: send 'Authorization: Bearer <token>' (see `berth login`)",
        code="unauthenticated",
    )


def _parse_signature_header(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, _, val = part.strip().partition("=")
        if key and val:
            fields[key] = val
    if "Credential" not in fields or "Signature" not in fields:
        raise Unauthenticated(
            "signature header needs Credential=<access key>, Signature=<hex>",
            code="bad_signature",
        )
    return fields
