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


@dataclass
class LoopContext:
    config: ManagerConfig
    db_factory: DbFactory
    clock: Callable[[], datetime]
    http: aiohttp.ClientSession
    metrics: ApiMetrics
    owner: str  # this manager's identity in row leases
    wake: Callable[[str], None]

    def agent(self, base_url: str) -> AgentClient:
        return AgentClient(
            base_url=base_url, secret=self.config.cluster_secret.get_secret_value(), http=self.http
        )
