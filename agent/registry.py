"""Node registration and manager discovery through the config store (etcd in a cluster).

With `config_store_url` set, the agent keeps `agents/<node_id>` in the store under its own lease
and, when `manager_url` is unset, finds managers under `managers/` (each manager keeps its own
leased key there, see `manager/leader.py`). The heartbeat goes to one manager; when that one
stops answering, or its key vanishes, the agent switches to another. PostgreSQL heartbeats stay
the source of truth for node liveness: the store only tells processes where the others are.

The keys every process publishes, `LeasedKey` and the discovery helpers live in
`cluster/registry.py` (re-exported here).

A store outage never stops the agent: the key is re-registered (with a new lease) once the store
is back, and the heartbeat keeps its current manager meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from types import TracebackType
from typing import Self

import aiohttp

from agent.config import AgentConfig
from agent.heartbeat import Heartbeat
from agent.node import Node
from cluster.config_store import ConfigStore
from cluster.errors import ClusterError
from cluster.factory import create_config_store
from cluster.registry import (
    AGENTS_PREFIX,
    MANAGERS_PREFIX,
    STORAGE_PROXIES_PREFIX,
    LeasedKey,
    discover,
    manager_urls,
    storage_proxy_urls,
)

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


def agent_registration(config: AgentConfig) -> str:
    return json.dumps(
        {
            "node_id": config.node_id,
            "url": config.public_url,
            "resource_group": config.resource_group,
            "version": AGENT_VERSION,
        },
        sort_keys=True,
    )


class NodeRegistry:
    """Register this node and run its heartbeat against a configured or discovered manager.

    `async with NodeRegistry(config=..., node=..., http=...) as registry:` starts both in the
    background; `registry.heartbeat` is the running `Heartbeat` once a manager is known."""

    def __init__(
        self,
        *,
        config: AgentConfig,
        node: Node,
        http: aiohttp.ClientSession,
        store: ConfigStore | None = None,
    ) -> None:
        if store is None and not config.config_store_url:
            raise ValueError("NodeRegistry needs config_store_url (or a store)")
        self.config = config
        self.node = node
        self.http = http
        self._owns_store = store is None
        self.store = store or create_config_store(str(config.config_store_url))
        self.registration = LeasedKey(
            self.store,
            AGENTS_PREFIX + config.node_id,
            agent_registration(config),
            ttl_s=config.registration_ttl_s,
        )
        self.heartbeat: Heartbeat | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Self:
        self._tasks = [
            asyncio.create_task(self.registration.run(), name="agent-registration"),
            asyncio.create_task(self._drive_heartbeat(), name="agent-heartbeat"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.registration.revoke()
        if self._owns_store:
            await self.store.close()

    async def _drive_heartbeat(self) -> None:
        fixed = self.config.manager_url
        url = fixed or await self._wait_for_manager()
        heartbeat = Heartbeat(node=self.node, config=self.config, http=self.http, manager_url=url)
        self.heartbeat = heartbeat
        beating = asyncio.create_task(heartbeat.run(), name="agent-heartbeat-run")
        try:
            if fixed:
                await beating
            else:
                await self._follow_managers(heartbeat)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _known_managers(self) -> list[str] | None:
        try:
            return await manager_urls(self.store)
        except ClusterError as exc:
            log.warning("cannot list managers: %s", exc)
            return None

    async def _wait_for_manager(self) -> str:
        while True:
            urls = await self._known_managers()
            if urls:
                log.info("discovered managers %s", urls)
                return urls[0]
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _follow_managers(self, heartbeat: Heartbeat) -> None:
        """Switch to another registered manager when the current one fails a report or
        deregisters. With the store down, stay on the current one."""
        handled_failures = 0  # switch once per failed report, not once per poll
        while True:
            await asyncio.sleep(self.config.heartbeat_interval_s)
            current = heartbeat.manager_url
            failures = heartbeat.failures
            urls = await self._known_managers()
            if not urls:
                continue
            if failures == 0:
                handled_failures = 0
                if current in urls:
                    continue
            elif failures == handled_failures:
                continue
            handled_failures = failures
            choice = _next_url(urls, current)
            if choice != current:
                log.warning("switching manager", extra={"from": current, "to": choice})
                heartbeat.retarget(choice)


def _next_url(urls: list[str], current: str) -> str:
    """The manager after `current` in the sorted list (wrapping), or the first one."""
    if current not in urls:
        return urls[0]
    return urls[(urls.index(current) + 1) % len(urls)]


__all__ = [
    "AGENTS_PREFIX",
    "MANAGERS_PREFIX",
    "STORAGE_PROXIES_PREFIX",
    "LeasedKey",
    "NodeRegistry",
    "agent_registration",
    "discover",
    "manager_urls",
    "storage_proxy_urls",
]
