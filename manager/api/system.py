"""Health, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from manager.api.framework import Call
from manager.errors import Unavailable
from manager.state import STATE_KEY

OPENAPI_KEY = web.AppKey("berth_openapi", dict)

DOCS_HTML = (Path(__file__).parent / "static" / "docs.html").read_text()


async def healthz(call: Call) -> dict[str, str]:
    return {"status": "ok"}


async def readyz(call: Call) -> dict[str, str]:
    state = call.request.app[STATE_KEY]
    try:
        async with state.db_factory() as db:
            await db.execute(text("SELECT 1"))
    except Exception as exc:
        raise Unavailable(f"database not reachable: {type(exc).__name__}") from None
    return {"status": "ready"}


async def metrics(call: Call) -> web.Response:
    metrics = call.request.app[STATE_KEY].metrics
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(call: Call) -> web.Response:
    return web.json_response(call.request.app[OPENAPI_KEY])


async def docs(call: Call) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
