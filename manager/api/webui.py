"""Serves the built web UI bundle (web_ui/dist) at `/`, with single-page-app fallback.

Implemented as the innermost middleware rather than a catch-all route: a catch-all route would
swallow the router's 405 answers for API paths and turn unknown API paths into HTML. Here only a
request that matched no route at all, is a GET/HEAD and is outside the API prefixes gets a file
from the bundle, or index.html so that deep links such as /sessions/<id> load the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.web_urldispatcher import MatchInfoError

# Never answered with the app shell: API clients must keep getting JSON errors there.
RESERVED_PREFIXES = ("/api/", "/apps/", "/healthz", "/readyz", "/metrics")
NOT_BUILT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Berth</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>Berth</h1>
<p>The web UI has not been built on this machine. Run <code>./scripts/build-web-ui</code> in the
Berth repository and restart the manager (or set <code>web_ui_dir</code>).</p>
<p>The API works without it: see <a href="/api/v1/docs">/api/v1/docs</a>.</p>
</body></html>
"""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_bundle_dir() -> Path:
    """web_ui/dist in a source checkout (where scripts/build-web-ui writes it)."""
    return Path(__file__).resolve().parents[2] / "web_ui" / "dist"


def add_web_ui_routes(app: web.Application, bundle_dir: Path | None) -> None:
    """Answer unmatched GET/HEAD requests outside the API with the bundle in `bundle_dir`
    (default: web_ui/dist). Call after every API route and middleware is registered."""
    root = (bundle_dir or default_bundle_dir()).resolve()

    @web.middleware
    async def web_ui(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_ui_request(request):
            return await handler(request)
        return _bundle_response(root, request.path)

    app.middlewares.append(web_ui)


def _is_ui_request(request: web.Request) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    info = request.match_info
    if not (isinstance(info, MatchInfoError) and info.http_exception.status == 404):
        return False  # a real route matched, or the router answers 405: let it run
    return not request.path.startswith(RESERVED_PREFIXES)


def _bundle_response(root: Path, path: str) -> web.StreamResponse:
    index = root / "index.html"
    if not index.is_file():
        return web.Response(text=NOT_BUILT_HTML, content_type="text/html", status=200)
    candidate = (root / path.lstrip("/")).resolve()
    if candidate != root and candidate.is_relative_to(root) and candidate.is_file():
        # Vite puts content hashes in asset names, so those may be cached for good.
        immutable = candidate.parent.name == "assets"
        cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
        return web.FileResponse(candidate, headers={"Cache-Control": cache})
    if candidate.parent.name == "assets" or "." in Path(path).name:
        # A missing asset must not come back as HTML (the browser would parse it as JS).
        raise web.HTTPNotFound()
    return web.FileResponse(
        index, headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    )


__all__ = ["RESERVED_PREFIXES", "add_web_ui_routes", "default_bundle_dir"]
