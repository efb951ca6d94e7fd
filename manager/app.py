"""The manager's composition root: `create_app(config)` builds every dependency once and registers
it as a cleanup context; nothing connects at import time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from manager import logs
from manager.api.framework import make_handler, utc_clock
from manager.api.middleware import build_middlewares
from manager.api.openapi import build_openapi
from manager.api.routes import all_routes
from manager.api.system import OPENAPI_KEY
from manager.auth.crypto import Sealer
from manager.config import ManagerConfig
from manager.db.engine import create_db_factory, create_engine
from manager.metrics import ApiMetrics
from manager.state import STATE_KEY, ManagerState

log = logging.getLogger("berth.manager")
VERSION = "0.1.0"


def create_app(
    config: ManagerConfig, *, clock: Callable[[], datetime] = utc_clock
) -> web.Application:
    metrics = ApiMetrics()
    app = web.Application(
        middlewares=build_middlewares(metrics=metrics), client_max_size=config.max_body_bytes
    )
    engine = create_engine(config.db_url.get_secret_value(), pool_size=config.db_pool_size)
    state = ManagerState(
        config=config,
        db_factory=create_db_factory(engine),
        sealer=Sealer(config.secret_key.get_secret_value()),
        clock=clock,
        metrics=metrics,
    )
    app[STATE_KEY] = state

    async def dispose_engine(_: web.Application) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app.cleanup_ctx.append(dispose_engine)

    routes = all_routes()
    for route in routes:
        handler = make_handler(route, db_factory=state.db_factory, clock=clock)
        handler.berth_route = route  # type: ignore[attr-defined]  # read by the auth middleware
        app.router.add_route(route.method, route.path, handler)
    app[OPENAPI_KEY] = build_openapi(routes, version=VERSION)
    return app


def run_manager(config: ManagerConfig) -> None:
    """Serve until SIGINT/SIGTERM; aiohttp then runs the cleanup contexts in reverse order."""
    logs.configure(json_logs=config.log_json, level=config.log_level)
    log.info("manager starting", extra={"listen": f"{config.listen_host}:{config.listen_port}"})
    web.run_app(
        create_app(config),
        host=config.listen_host,
        port=config.listen_port,
        print=None,
        handle_signals=True,
        shutdown_timeout=5,
    )


async def serve_until(config: ManagerConfig, stop: asyncio.Event) -> None:
    """Run the manager inside an existing event loop (used by tests and benchmarks)."""
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    site = web.TCPSite(runner, config.listen_host, config.listen_port)
    await site.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


__all__ = ["VERSION", "create_app", "run_manager", "serve_until"]
