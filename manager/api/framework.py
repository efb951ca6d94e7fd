"""The small glue between aiohttp and the services: a Route declares method, path, permission and
models; `make_handler` parses and validates input, opens the DB transaction, and serializes output.
Handlers stay a few lines: parse → one service call → response model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from manager.api.permissions import Permission
from manager.auth.principal import Principal
from manager.errors import InvalidRequest, PayloadTooLarge, Unauthenticated
from manager.state import STATE_KEY


@dataclass
class Call:
    """Everything a handler needs from the request, already validated."""

    request: web.Request
    principal: Principal | None
    body: Any
    query: Any
    now: datetime
    db: AsyncSession | None = None

    @property
    def me(self) -> Principal:
        if self.principal is None:  # the route table guarantees this for non-public routes
            raise Unauthenticated("authentication required")
        return self.principal

    @property
    def tx(self) -> AsyncSession:
        assert self.db is not None, "route declared transactional=False"
        return self.db

    def wake(self, loop: str) -> None:
        """Wake a background loop once this request's transaction has committed; woken
        earlier, the loop would read the database before the change is visible."""
        self.request.setdefault(WAKE_AFTER_COMMIT, []).append(loop)

    def path_uuid(self, name: str) -> uuid.UUID:
        try:
            return uuid.UUID(self.request.match_info[name])
        except ValueError:
            raise InvalidRequest(f"{name} must be a UUID", code="invalid_path") from None

    def path(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[Any]]

REQUEST_ID = web.RequestKey("request_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
CSRF_TOKEN = web.RequestKey("csrf_token", str)
# The transaction opened by the auth middleware for transactional routes, reused by the handler.
DB_HANDLE = web.RequestKey("db", AsyncSession)
WAKE_AFTER_COMMIT = web.RequestKey("wake_after_commit", list)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    permission: Permission
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None  # a pydantic model type, list[...] etc., or None for 204
    status: int = 200
    transactional: bool = True  # False for streams and calls that do network I/O
    tags: tuple[str, ...] = field(default_factory=tuple)


def make_handler(
    route: Route, *, db_factory: Callable[[], Any], clock: Callable[[], datetime]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        principal: Principal | None = request.get(PRINCIPAL)
        body = await _parse_body(request, route.body)
        query = _parse_query(request, route.query)
        call = Call(request=request, principal=principal, body=body, query=query, now=clock())
        if route.transactional and DB_HANDLE in request:
            call.db = request[DB_HANDLE]
            # Serialize inside the transaction so lazy attributes still load.
            response = _to_response(route, await route.handler(call))
        elif route.transactional:
            async with db_factory() as db, db.begin():
                call.db = db
                response = _to_response(route, await route.handler(call))
            run_wakes(request)
        else:
            response = _to_response(route, await route.handler(call))
            run_wakes(request)
        return response

    return handle


def run_wakes(request: web.Request) -> None:
    """Deliver the wake-ups a handler asked for (call after the transaction committed)."""
    loops = request.pop(WAKE_AFTER_COMMIT, [])
    if loops:
        wake = request.app[STATE_KEY].wake
        for loop in dict.fromkeys(loops):
            wake(loop)


def utc_clock() -> datetime:
    return datetime.now(UTC)


async def _parse_body(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    # aiohttp enforces client_max_size (set from the config) while reading.
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("request body is too large") from None
    if not raw:
        raise InvalidRequest("a JSON body is required", code="invalid_json")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the body is not valid JSON", code="invalid_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(
            "the request body failed validation", code="validation_error", details=_errors(exc)
        ) from None


def _parse_query(request: web.Request, model: type[BaseModel] | None) -> Any:
    if model is None:
        return None
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(
            "query parameters failed validation", code="validation_error", details=_errors(exc)
        ) from None


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()
    ]


def _to_response(route: Route, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204)
    if isinstance(result, BaseModel):
        text = result.model_dump_json()
    else:
        text = json.dumps(result, default=str)
    return web.Response(text=text, status=route.status, content_type="application/json")
