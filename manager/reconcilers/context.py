"""What the loops need, passed explicitly (no globals): DB, clock, agent clients, identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from manager.clients.agent import AgentClient
from manager.config import ManagerConfig
from manager.db.engine import DbFactory
from manager.metrics import ApiMetrics
from manager.storage_locator import StorageProxyLocator


@dataclass
class LoopContext:
    config: ManagerConfig
    db_factory: DbFactory
    clock: Callable[[], datetime]
    http: aiohttp.ClientSession
    metrics: ApiMetrics
    owner: str  # this manager's identity in row leases
    wake: Callable[[str], None]
    storage: StorageProxyLocator | None = None  # None: the fixed config.storage_proxy_url

    def storage_proxy(self) -> StorageProxyLocator:
        return self.storage or StorageProxyLocator(explicit=self.config.storage_proxy_url)

    def agent(self, base_url: str) -> AgentClient:
        return AgentClient(
            base_url=base_url, secret=self.config.cluster_secret.get_secret_value(), http=self.http
        )
