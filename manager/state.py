"""The manager's dependencies, built once by the composition root and stored under one AppKey."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
from aiohttp import web

from manager.auth.cache import PrincipalCache
from manager.auth.crypto import Sealer
from manager.config import ManagerConfig
from manager.db.engine import DbFactory
from manager.metrics import ApiMetrics
from manager.storage_locator import StorageProxyLocator


@dataclass
class ManagerState:
    config: ManagerConfig
    db_factory: DbFactory
    # Autocommit handles for GET requests (no BEGIN/COMMIT round trips); see create_read_factory.
    read_factory: DbFactory
    sealer: Sealer
    clock: Callable[[], datetime]
    metrics: ApiMetrics
    # Wakes a background loop early (locally and, through the event bus, on other managers).
    # Replaced by the loops' cleanup context; a no-op before the loops run.
    wake: Callable[[str], None] = field(default=lambda _name: None)
    # Shared HTTP client for agent and storage-proxy calls, opened by a cleanup context.
    http: aiohttp.ClientSession | None = None
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(0))  # off
    # Where the storage proxy is: the configured URL or the one registered in etcd.
    storage: StorageProxyLocator = field(
        default_factory=lambda: StorageProxyLocator(explicit=None)
    )


STATE_KEY = web.AppKey("berth_state", ManagerState)
