"""The manager serves the web UI bundle at `/` with single-page-app fallback, without changing
how API paths answer (JSON 404s and 405s stay as they were)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from manager.app import create_app
from manager.config import ManagerConfig


def _bundle(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text('<!doctype html><meta name="berth-web-ui">shell')
    (root / "assets" / "app-1234.js").write_text("console.log('berth')")
    (root / "favicon.svg").write_text("<svg/>")
    return root


async def _client(aiohttp_client: Any, config: ManagerConfig, bundle: Path) -> Any:
    # create_app wires the bundle itself (web_ui_dir); point it at this test's bundle.
    app: web.Application = create_app(config.model_copy(update={"web_ui_dir": str(bundle)}))
    return await aiohttp_client(app)


async def test_index_assets_and_deep_links(
    aiohttp_client: Any, manager_config: ManagerConfig, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, manager_config, _bundle(tmp_path / "dist"))
    root = await client.get("/")
    assert root.status == 200 and "berth-web-ui" in await root.text()
    assert root.headers["Cache-Control"] == "no-cache"
    deep = await client.get("/sessions/0b7c9a2e-1111-4d4d-8888-123456789abc")
    assert deep.status == 200 and "berth-web-ui" in await deep.text()
    asset = await client.get("/assets/app-1234.js")
    assert asset.status == 200 and "berth" in await asset.text()
    assert "immutable" in asset.headers["Cache-Control"]
    assert (await client.get("/favicon.svg")).status == 200
    head = await client.head("/admin/nodes")
    assert head.status == 200


async def test_api_paths_keep_their_json_errors(
    aiohttp_client: Any, manager_config: ManagerConfig, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, manager_config, _bundle(tmp_path / "dist"))
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status == 404
    assert (await missing.json())["code"] == "route_not_found"
    wrong_method = await client.put("/api/v1/auth/me")
    assert wrong_method.status == 405
    assert (await client.get("/healthz")).status == 200
    # The app proxy owns /apps/: an anonymous request gets its JSON refusal, not the shell.
    app = await client.get("/apps/x/jupyterlab/")
    assert app.status in (401, 404) and app.content_type == "application/json"
    # A missing asset is a 404, never the HTML shell parsed as JavaScript.
    gone = await client.get("/assets/old-999.js")
    assert gone.status == 404 and gone.content_type == "application/json"
    # Only GET/HEAD get the shell.
    assert (await client.post("/dashboard")).status in (404, 405)


async def test_no_path_escapes_the_bundle(
    aiohttp_client: Any, manager_config: ManagerConfig, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("do not serve")
    client = await _client(aiohttp_client, manager_config, _bundle(tmp_path / "dist"))
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        response = await client.get(path)
        assert "do not serve" not in await response.text(), path


async def test_missing_bundle_explains_how_to_build_it(
    aiohttp_client: Any, manager_config: ManagerConfig, tmp_path: Path
) -> None:
    client = await _client(aiohttp_client, manager_config, tmp_path / "not-built")
    response = await client.get("/")
    assert response.status == 200
    assert "scripts/build-web-ui" in await response.text()
