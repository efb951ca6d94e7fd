"""Prometheus metrics of one storage proxy process (`GET /metrics` on the internal API).

One registry per `create_apps` call (no global state), so several proxies in one test process
never share counters. Request latency and upload bytes are measured by `metrics_middleware`
(outermost on both apps, so it sees the final status of every request); downloaded bytes are
counted where the public API writes them (`count_download`); volume gauges are refreshed from
the filesystem when scraped.

The endpoint is unauthenticated, like the manager's `/metrics`, and exists only on the internal
API (never on the public one that faces browsers): keep that port on the cluster network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from storage_proxy.api.middleware import Handler
from storage_proxy.config import PosixVolumeOptions, VolumeConfig

log = logging.getLogger(__name__)

UPLOAD_ROUTE = "/v1/upload/{upload_id}"
STATVFS_TIMEOUT_S = 2.0  # a hung NFS mount must not hang the scrape


class StorageMetrics:
    def __init__(self, volumes: list[VolumeConfig]) -> None:
        self.registry = CollectorRegistry()
        self._posix_roots = {
            v.name: v.options.root for v in volumes if isinstance(v.options, PosixVolumeOptions)
        }
        self.latency = Histogram(
            "berth_storage_http_request_duration_seconds",
            "Storage proxy request latency (downloads: until the last byte is written)",
            ["api", "method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.uploaded = Counter(
            "berth_storage_uploaded_bytes",
            "Upload body bytes received (tus PATCH requests)",
            registry=self.registry,
        )
        self.downloaded = Counter(
            "berth_storage_downloaded_bytes",
            "File and archive bytes sent to clients",
            registry=self.registry,
        )
        self.active_uploads = Gauge(
            "berth_storage_active_uploads",
            "Upload (tus PATCH) requests being received now",
            registry=self.registry,
        )
        self.volume_capacity = Gauge(
            "berth_storage_volume_capacity_bytes",
            "Size of the filesystem holding each posix volume",
            ["volume"],
            registry=self.registry,
        )
        self.volume_used = Gauge(
            "berth_storage_volume_used_bytes",
            "Bytes in use on the filesystem holding each posix volume",
            ["volume"],
            registry=self.registry,
        )

    async def refresh_volumes(self) -> None:
        """Read each posix volume's filesystem usage (statvfs, in a thread, bounded)."""
        for name, root in self._posix_roots.items():
            try:
                total, used = await asyncio.wait_for(
                    asyncio.to_thread(_fs_usage, root), STATVFS_TIMEOUT_S
                )
            except (OSError, TimeoutError) as exc:
                log.warning("cannot read the usage of volume %s: %s", name, exc)
                continue
            self.volume_capacity.labels(name).set(total)
            self.volume_used.labels(name).set(used)

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS_KEY = web.AppKey("berth_storage_metrics", StorageMetrics)


def _fs_usage(root: Path) -> tuple[int, int]:
    st = os.statvfs(root)
    total = st.f_blocks * st.f_frsize
    return total, total - st.f_bfree * st.f_frsize


def route_of(request: web.Request) -> str:
    """The matched route's template (bounded label values), or `unmatched`."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: StorageMetrics, api: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = route_of(request)
        upload = request.method == "PATCH" and route == UPLOAD_ROUTE
        status = 499  # the client went away before an answer
        if upload:
            metrics.active_uploads.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            metrics.latency.labels(api, request.method, route, str(status)).observe(
                time.perf_counter() - started
            )
            if upload:
                metrics.active_uploads.dec()
                metrics.uploaded.inc(request.content.total_bytes)

    return middleware


def count_download(request: web.Request, sent: int) -> None:
    """Count `sent` body bytes of a download or archive answer."""
    metrics = request.app.get(METRICS_KEY)
    if metrics is not None and sent > 0:
        metrics.downloaded.inc(sent)


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    await metrics.refresh_volumes()
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
