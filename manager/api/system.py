"""Health, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from manager.api.framework import Call
from manager.errors import Unavailable
from manager.state import STATE_KEY

OPENAPI_KEY = web.AppKey("berth_openapi", dict)

DOCS_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>Berth API</title>
<style>body{font:14px system-ui;margin:2rem;max-width:70rem}code{background:#eee;padding:0 .2em}
h2{margin-top:1.5rem}td{padding:.1rem .6rem;vertical-align:top}</style></head>
<body><h1>Berth API</h1><p>Machine-readable document: <a href="/api/v1/openapi.json">openapi.json</a>.
Authenticate with <code>Authorization: Bearer &lt;token&gt;</code>.</p><div id="ops"></div>
<script>
fetch('/api/v1/openapi.json').then(r=>r.json()).then(doc=>{
  const rows=[];for(const [p,ops] of Object.entries(doc.paths)){for(const [m,op] of Object.entries(ops)){
  rows.push(`<tr><td><code>${m.toUpperCase()}</code></td><td><code>${p}</code></td><td>${op.summary}</td>`+
  `<td>${op['x-permission']}</td></tr>`)}}
  document.getElementById('ops').innerHTML='<table>'+rows.join('')+'</table>'});
</script></body></html>"""


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
    registry = call.request.app[STATE_KEY].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(call: Call) -> web.Response:
    return web.json_response(call.request.app[OPENAPI_KEY])


async def docs(call: Call) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
