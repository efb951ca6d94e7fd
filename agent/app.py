"""Composition root: `create_app(config)` builds every dependency; `run_agent` serves it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web

from agent.api import NODE_KEY, SECRET_KEY, error_middleware, routes
from agent.config import AgentConfig
from agent.devices.base import DevicePlugin
from agent.heartbeat import Heartbeat
from agent.metrics import METRICS_KEY, AgentMetrics, metrics_handler, metrics_middleware
from agent.node import Node
from agent.plugins import load_device_plugins, load_runtime
from agent.registry import NodeRegistry
from agent.runtime.base import Closeable, ContainerRuntime

log = logging.getLogger(__name__)

CONFIG_KEY = web.AppKey("berth_agent_config", AgentConfig)
HEARTBEAT_KEY: web.AppKey[Heartbeat | None] = web.AppKey("berth_agent_heartbeat")


def create_app(
    config: AgentConfig,
    *,
    plugins: Sequence[DevicePlugin] | None = None,
    runtime: ContainerRuntime | None = None,
) -> web.Application:
    """Build the agent app. `plugins`/`runtime` replace the configured ones (tests, embedding)."""
    secret = config.cluster_secret.get_secret_value()
    if not secret:
        raise ValueError("cluster_secret must be set: every agent route requires it")
    metrics = AgentMetrics()
    app = web.Application(middlewares=[metrics_middleware(metrics), error_middleware])
    app[CONFIG_KEY] = config
    app[SECRET_KEY] = secret
    app[METRICS_KEY] = metrics
    app.add_routes(routes())
    app.router.add_get("/metrics", metrics_handler)  # no cluster secret (api.OPEN_PATHS)

    async def node_ctx(app: web.Application) -> AsyncIterator[None]:
        chosen_runtime = runtime if runtime is not None else load_runtime(config)
        chosen_plugins = list(plugins) if plugins is not None else load_device_plugins(config)
        config.scratch_root.mkdir(parents=True, exist_ok=True)
        node = Node(config=config, plugins=chosen_plugins, runtime=chosen_runtime)
        await node.start()
        app[NODE_KEY] = node
        watcher = asyncio.create_task(node.watch_runtime(), name="agent-runtime-watch")
        try:
            yield
        finally:
            await _cancel(watcher)
            if isinstance(chosen_runtime, Closeable):
                await chosen_runtime.aclose()

    async def heartbeat_ctx(app: web.Application) -> AsyncIterator[None]:
        if config.config_store_url:  # register in the store; discover managers if unset
            async with (
                aiohttp.ClientSession() as http,
                NodeRegistry(config=config, node=app[NODE_KEY], http=http),
            ):
                app[HEARTBEAT_KEY] = None
                yield
            return
        if not config.manager_url:
            app[HEARTBEAT_KEY] = None
            yield
            return
        async with aiohttp.ClientSession() as http:
            heartbeat = Heartbeat(node=app[NODE_KEY], config=config, http=http)
            app[HEARTBEAT_KEY] = heartbeat
            task = asyncio.create_task(heartbeat.run(), name="agent-heartbeat")
            try:
                yield
            finally:
                await _cancel(task)

    app.cleanup_ctx.append(node_ctx)
    app.cleanup_ctx.append(heartbeat_ctx)
    return app


def run_agent(config: AgentConfig) -> None:
    """Serve until SIGINT/SIGTERM; containers keep running and are re-adopted on restart."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    web.run_app(
        create_app(config),
        host=config.listen_host,
        port=config.listen_port,
        handle_signals=True,
        print=None,
        access_log=None,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
