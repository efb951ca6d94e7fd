"""HTTP handlers: parse → one Node call → serialise. Errors become {code, message, request_id}."""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent.contract import (
    CLUSTER_AUTH_HEADER,
    REQUEST_ID_HEADER,
    CreateContainerRequest,
    ErrorBody,
    ErrorCode,
)
from agent.errors import AgentDomainError
from agent.node import Node

log = logging.getLogger(__name__)


STATUS_OF: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.SLOT_UNKNOWN: 400,
    ErrorCode.BAD_MOUNT: 400,
    ErrorCode.DEVICE_UNKNOWN: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONTAINER_NOT_FOUND: 404,
    ErrorCode.IMAGE_NOT_FOUND: 404,
    ErrorCode.DEVICE_BUSY: 409,
    ErrorCode.INSUFFICIENT_CAPACITY: 409,
    ErrorCode.PORTS_EXHAUSTED: 409,
    ErrorCode.CONTAINER_EXISTS: 409,
    ErrorCode.RUNTIME_ERROR: 502,
    ErrorCode.RUNTIME_UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}

NODE_KEY = web.AppKey("berth_agent_node", Node)
SECRET_KEY: web.AppKey[str] = web.AppKey("berth_agent_secret", str)
REQUEST_ID_KEY = web.RequestKey("berth_request_id", str)
# Served without the cluster secret (Prometheus scrapers do not carry it; see agent/metrics.py).
OPEN_PATHS = frozenset({"/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def routes() -> list[web.RouteDef]:
    return [
        web.post("/v1/containers", create_container),
        web.get("/v1/containers", list_containers),
        web.get("/v1/containers/{container_id}", get_container),
        web.delete("/v1/containers/{container_id}", destroy_container),
        web.get("/v1/containers/{container_id}/logs", container_logs),
        web.get("/v1/containers/{container_id}/stats", container_stats),
        web.get("/v1/node", node_report),
        web.get("/healthz", healthz),
    ]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    try:
        expected = request.app[SECRET_KEY]
        given = request.headers.get(CLUSTER_AUTH_HEADER, "")
        if request.path not in OPEN_PATHS and not hmac.compare_digest(
            given.encode(), expected.encode()
        ):
            return _error(ErrorCode.UNAUTHORIZED, "missing or wrong cluster secret", request_id)
        response = await handler(request)
    except AgentDomainError as exc:
        return _error(exc.code, exc.message, request_id)
    except ValidationError as exc:
        return _error(ErrorCode.BAD_REQUEST, _validation_message(exc), request_id)
    except web.HTTPException as exc:
        code = ErrorCode.NOT_FOUND if exc.status == 404 else ErrorCode.BAD_REQUEST
        return _error(code, exc.reason, request_id, status=exc.status)
    except Exception:
        log.exception("unhandled error request_id=%s", request_id)
        return _error(ErrorCode.INTERNAL, "internal agent error", request_id)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


async def create_container(request: web.Request) -> web.Response:
    body = await _json_body(request)
    spec = CreateContainerRequest.model_validate(body)
    info = await request.app[NODE_KEY].create_container(spec)
    return _json(info, status=201)


async def list_containers(request: web.Request) -> web.Response:
    containers = request.app[NODE_KEY].list_containers()
    return web.json_response({"containers": [c.model_dump(mode="json") for c in containers]})


async def get_container(request: web.Request) -> web.Response:
    return _json(request.app[NODE_KEY].get_container(request.match_info["container_id"]))


async def destroy_container(request: web.Request) -> web.Response:
    container_id = request.match_info["container_id"]
    existed = await request.app[NODE_KEY].destroy_container(container_id)
    return web.json_response({"container_id": container_id, "existed": existed})


async def container_logs(request: web.Request) -> web.StreamResponse:
    follow = request.query.get("follow", "false").lower() in ("1", "true", "yes")
    chunks = request.app[NODE_KEY].logs(request.match_info["container_id"], follow=follow)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except AgentDomainError as exc:
        # Headers are gone already; the container vanished mid-stream, so just end it.
        log.info("log stream ended early: %s", exc.message)
    await response.write_eof()
    return response


async def container_stats(request: web.Request) -> web.Response:
    return _json(await request.app[NODE_KEY].stats(request.match_info["container_id"]))


async def node_report(request: web.Request) -> web.Response:
    return _json(await request.app[NODE_KEY].report())


async def healthz(request: web.Request) -> web.Response:
    health = request.app[NODE_KEY].health
    return _json(health)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AgentDomainError(f"request body is not valid JSON: {exc}") from exc


def _json(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _error(
    code: ErrorCode, message: str, request_id: str, *, status: int | None = None
) -> web.Response:
    body = ErrorBody(code=code.value, message=message, request_id=request_id)
    response = _json(body, status=status or STATUS_OF.get(code, 400))
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(item) for item in error["loc"]) or "body"
        parts.append(f"{location}: {error['msg']}")
    return "invalid request: " + "; ".join(parts)
