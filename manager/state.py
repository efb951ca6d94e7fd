"""The manager's dependencies, built once by the composition root and stored under one AppKey."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from manager.auth.crypto import Sealer
from manager.config import ManagerConfig
from manager.db.engine import DbFactory
from manager.metrics import ApiMetrics


@dataclass
class ManagerState:
    config: ManagerConfig
    db_factory: DbFactory
    sealer: Sealer
    clock: Callable[[], datetime]
    metrics: ApiMetrics
    # Filled by later cleanup contexts (event bus, config store, HTTP client, loops).
    extras: dict[str, Any] = field(default_factory=dict)


STATE_KEY = web.AppKey("berth_state", ManagerState)
