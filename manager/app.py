"""The manager's composition root: `create_app(config)` builds every dependency once and registers
it as a cleanup context; nothing connects at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from cluster.bus import EventBus
from cluster.factory import create_event_bus
from manager import logs
from manager.api.apps import install_app_proxy
from manager.api.framework import make_handler, utc_clock
from manager.api.middleware import build_middlewares
from manager.api.openapi import build_openapi
from manager.api.routes import all_routes, public_routes
from manager.api.system import OPENAPI_KEY
from manager.api.webui import add_web_ui_routes
from manager.auth.cache import PrincipalCache
from manager.auth.crypto import Sealer
from manager.config import ManagerConfig
from manager.db.engine import create_db_factory, create_engine, create_read_factory
from manager.leader import ManagerMembership
from manager.metrics import ApiMetrics
from manager.ratelimit import rate_limits_ctx
from manager.reconcilers import build_loops
from manager.reconcilers.base import Loops
from manager.reconcilers.context import LoopContext
from manager.state import STATE_KEY, ManagerState
from manager.storage_locator import StorageProxyLocator

log = logging.getLogger("berth.manager")
VERSION = "0.1.0"
WAKE_STREAM = "wake"


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
        read_factory=create_read_factory(engine),
        sealer=Sealer(config.secret_key.get_secret_value()),
        clock=clock,
        metrics=metrics,
        principals=PrincipalCache(config.auth_cache_ttl_s),
        storage=StorageProxyLocator.from_config(config),
    )
    app[STATE_KEY] = state
    install_app_proxy(app)

    async def dispose_engine(_: web.Application) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app.cleanup_ctx.append(dispose_engine)
    app.cleanup_ctx.append(_http_client)
    app.cleanup_ctx.append(rate_limits_ctx)
    app.cleanup_ctx.append(state.storage.cleanup_ctx)  # configured or discovered proxy
    app.cleanup_ctx.append(_background_loops)

    routes = all_routes()
    for route in routes:
        handler = make_handler(route, db_factory=state.db_factory, clock=clock)
        handler.berth_route = route  # type: ignore[attr-defined]  # read by the auth middleware
        app.router.add_route(route.method, route.path, handler)
    app[OPENAPI_KEY] = build_openapi(public_routes(), version=VERSION)
    # Last: the SPA's catch-all route and its middleware must come after every API route.
    add_web_ui_routes(app, Path(config.web_ui_dir) if config.web_ui_dir else None)
    return app


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    state.http = aiohttp.ClientSession()
    yield
    await state.http.close()


async def _background_loops(app: web.Application) -> AsyncIterator[None]:
    """Start the loops and the wake-up relay; stop them before the DB engine closes."""
    state = app[STATE_KEY]
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    if state.config.loops == []:
        async with _forward_wakes(state, owner):
            yield
        return
    assert state.http is not None
    bus = create_event_bus(state.config.redis_url, prefix="berth")
    ctx = LoopContext(
        config=state.config,
        db_factory=state.db_factory,
        clock=state.clock,
        http=state.http,
        metrics=state.metrics,
        owner=owner,
        wake=lambda name: state.wake(name),
        storage=state.storage,
    )
    loops = build_loops(ctx, only=state.config.loops)

    def wake(name: str) -> None:
        loops.wake(name)
        _publish_soon(bus, name, owner)

    state.wake = wake
    relay = asyncio.create_task(_relay_wakes(bus, loops, owner))
    membership = ManagerMembership.from_config(state.config, identity=owner)
    membership.guard(loops)  # liveness/reap/timeouts only on the leader (etcd store)
    await membership.start()
    loops.start()
    try:
        yield
    finally:
        state.wake = lambda _name: None
        await loops.stop()
        await membership.stop()
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await bus.close()


_PENDING: set[asyncio.Task[None]] = set()


@contextlib.asynccontextmanager
async def _forward_wakes(state: ManagerState, owner: str) -> AsyncIterator[None]:
    """A manager without loops (an API-only replica, or workers 1..N-1) hands its wake-ups to
    the managers that run them, over a shared event bus; a local:// bus reaches no one."""
    if state.config.redis_url.startswith("local:"):
        yield
        return
    bus = create_event_bus(state.config.redis_url, prefix="berth")

    state.wake = lambda name: _publish_soon(bus, name, owner)
    try:
        yield
    finally:
        state.wake = lambda _name: None
        await asyncio.gather(*_PENDING, return_exceptions=True)
        await bus.close()


def _publish_soon(bus: EventBus, name: str, owner: str) -> None:
    """Publish a wake hint without making the caller (a request handler) wait for the bus."""
    task = asyncio.get_running_loop().create_task(_publish_wake(bus, name, owner))
    _PENDING.add(task)  # keep a reference until it finishes
    task.add_done_callback(_PENDING.discard)


async def _publish_wake(bus: EventBus, name: str, owner: str) -> None:
    try:
        await bus.publish(WAKE_STREAM, {"loop": name, "from": owner})
    except Exception as exc:  # a lost hint costs latency only; loops also poll
        log.debug("wake publish failed", extra={"error": repr(exc)})


async def _relay_wakes(bus: EventBus, loops: Loops, owner: str) -> None:
    """Wake hints from other managers wake our loops too."""
    while True:
        try:
            async with bus.subscribe(WAKE_STREAM) as stream:
                async for message in stream:
                    if message.event.get("from") != owner:
                        loops.wake(str(message.event.get("loop", "")))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("wake relay interrupted; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(2)


def run_manager(config: ManagerConfig, *, worker: int = 0, reuse_port: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; aiohttp then runs the cleanup contexts in reverse order.
    With `workers` > 1 this process supervises that many workers instead (manager.workers)."""
    if config.workers > 1:
        from manager.workers import supervise

        raise SystemExit(supervise(config))
    logs.configure(json_logs=config.log_json, level=config.log_level)
    log.info(
        "manager starting",
        extra={"listen": f"{config.listen_host}:{config.listen_port}", "worker": worker},
    )
    app = create_app(config)
    # Everything imported and built so far lives as long as the process: move it out of the
    # collector's reach, so full collections (which pause every request) stay short.
    gc.collect()
    gc.freeze()
    web.run_app(
        app,
        loop=_event_loop(),
        host=config.listen_host,
        port=config.listen_port,
        print=None,
        handle_signals=True,
        shutdown_timeout=5,
        reuse_port=reuse_port,
    )


def _event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: its C transports spend much less than the stdlib loop on each
    request's socket reads and writes (to clients and to PostgreSQL)."""
    try:
        import uvloop
    except ImportError:  # e.g. a platform without wheels: the stdlib loop works, slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


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
