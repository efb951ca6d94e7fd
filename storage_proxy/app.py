"""Composition root: both aiohttp apps from one config, and the blocking process entry."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from storage_proxy.api import internal, public
from storage_proxy.api.middleware import errors_middleware
from storage_proxy.config import StorageProxyConfig
from storage_proxy.metrics import METRICS_KEY, StorageMetrics, metrics_handler, metrics_middleware
from storage_proxy.registration import registered
from storage_proxy.volumes import Volumes

log = logging.getLogger(__name__)

# Request bodies of the JSON endpoints are small; upload bodies are streamed, not buffered.
JSON_BODY_LIMIT = 1024 * 1024
# aiohttp pauses reading a request body once 2x this much is buffered; its 64 KiB default makes
# an upload wake the handler for every 64 KiB and halves its throughput. Bounded per connection.
UPLOAD_READ_BUFSIZE = 1024 * 1024


@dataclass(frozen=True)
class StorageProxyApps:
    internal: web.Application
    public: web.Application
    volumes: Volumes
    metrics: StorageMetrics


def create_apps(config: StorageProxyConfig, *, volumes: Volumes | None = None) -> StorageProxyApps:
    """Build the internal and public apps; they share one `Volumes`, started by whichever
    app starts first and closed by the last to stop."""
    vols = volumes if volumes is not None else Volumes.from_config(config)
    metrics = StorageMetrics(config.volumes)

    async def volumes_ctx(app: web.Application) -> AsyncIterator[None]:
        async with vols.lease():
            yield

    internal_app = web.Application(
        middlewares=[
            metrics_middleware(metrics, "internal"),
            errors_middleware,
            internal.secret_middleware,
        ],
        client_max_size=JSON_BODY_LIMIT,
    )
    internal_app[internal.VOLUMES_KEY] = vols
    internal_app[internal.SECRET_KEY] = config.cluster_secret.get_secret_value()
    internal_app[internal.PUBLIC_URL_KEY] = config.advertised_public_url
    internal_app[METRICS_KEY] = metrics
    internal_app.cleanup_ctx.append(volumes_ctx)
    internal.setup_routes(internal_app)
    internal_app.router.add_get("/metrics", metrics_handler)  # no secret, like /health

    public_app = web.Application(
        middlewares=[
            metrics_middleware(metrics, "public"),
            errors_middleware,
            public.preflight_middleware,
        ],
        client_max_size=JSON_BODY_LIMIT,
        handler_args={"read_bufsize": UPLOAD_READ_BUFSIZE},
    )
    public_app[internal.VOLUMES_KEY] = vols
    public_app[public.TOKEN_SECRET_KEY] = config.token_secret.get_secret_value()
    public_app[public.CORS_ORIGINS_KEY] = list(config.cors_allow_origins)
    public_app[public.ARCHIVE_MAX_FILES_KEY] = config.archive_max_files
    public_app[METRICS_KEY] = metrics  # counted by public.py; served on the internal API only
    public_app.cleanup_ctx.append(volumes_ctx)
    public.setup_routes(public_app)
    return StorageProxyApps(
        internal=internal_app, public=public_app, volumes=vols, metrics=metrics
    )


async def serve(config: StorageProxyConfig, stop: asyncio.Event) -> None:
    """Serve both APIs until `stop` is set, then shut down gracefully. With a config store,
    the proxy is registered there while it listens (`storage_proxy/registration.py`)."""
    apps = create_apps(config)
    runners = [web.AppRunner(apps.internal), web.AppRunner(apps.public)]
    binds = [
        (config.internal_host, config.internal_port),
        (config.public_host, config.public_port),
    ]
    started: list[web.AppRunner] = []
    try:
        for runner, (host, port) in zip(runners, binds, strict=True):
            await runner.setup()
            started.append(runner)
            await web.TCPSite(runner, host, port).start()
            log.info("storage proxy listening on %s:%s", host, port)
        internal_url, public_url = _advertised(config, runners)
        async with registered(config, internal_url=internal_url, public_url=public_url):
            await stop.wait()
    finally:
        for runner in reversed(started):
            await runner.cleanup()


def _advertised(config: StorageProxyConfig, runners: list[web.AppRunner]) -> tuple[str, str]:
    """Internal and public URLs to publish; port 0 (any free port) becomes the bound port."""
    internal, public = config.internal_url, config.advertised_public_url
    if config.advertised_internal_url is None and config.internal_port == 0:
        port = runners[0].addresses[0][1]
        internal = f"http://{config.internal_host}:{port}"
    if config.public_url is None and config.public_port == 0:
        public = f"http://{config.public_host}:{runners[1].addresses[0][1]}"
    return internal, public


def run_storage_proxy(config: StorageProxyConfig) -> None:
    """Blocking entry point; SIGINT and SIGTERM stop it cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    asyncio.run(main())
