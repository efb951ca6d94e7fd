"""Push the NodeReport every heartbeat_interval_s and container events as soon as they happen.

The manager being down never affects containers: reports and events are retried with an
exponential back-off, and undelivered events stay queued (bounded) in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from agent.config import AgentConfig
from agent.contract import CLUSTER_AUTH_HEADER, ContainerEvent
from agent.node import Node

log = logging.getLogger(__name__)

BACKOFF_MAX_S = 30.0
BACKOFF_MAX_INTERVALS = 8  # with short test intervals the cap scales down with them
REQUEST_TIMEOUT_S = 10.0


class ManagerUnreachable(Exception):
    pass


def heartbeat_url(manager_url: str) -> str:
    return f"{manager_url.rstrip('/')}/api/v1/internal/agents/heartbeat"


def events_url(manager_url: str, node_id: str) -> str:
    return f"{manager_url.rstrip('/')}/api/v1/internal/agents/{node_id}/events"


class Heartbeat:
    def __init__(
        self,
        *,
        node: Node,
        config: AgentConfig,
        http: aiohttp.ClientSession,
        manager_url: str | None = None,
    ) -> None:
        """`manager_url` (a discovered manager, see agent.registry) wins over the config's."""
        url = manager_url or config.manager_url
        if not url:
            raise ValueError("heartbeat needs manager_url")
        self._node = node
        self._http = http
        self._interval = config.heartbeat_interval_s
        self._node_id = config.node_id
        self._headers = {CLUSTER_AUTH_HEADER: config.cluster_secret.get_secret_value()}
        self.failures = 0
        self.retarget(url)

    def retarget(self, manager_url: str) -> None:
        """Send the next reports and events to another manager (every manager serves them)."""
        self.manager_url = manager_url
        self._report_url = heartbeat_url(manager_url)
        self._events_url = events_url(manager_url, self._node_id)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_report = 0.0
        while True:
            try:
                if loop.time() >= next_report:
                    report = await self._node.report()
                    await self._post(self._report_url, report.model_dump(mode="json"))
                    next_report = loop.time() + self._interval
                await self._push_events()
                self.failures = 0
            except ManagerUnreachable as exc:
                self.failures += 1
                cap = min(BACKOFF_MAX_S, self._interval * BACKOFF_MAX_INTERVALS)
                delay = min(self._interval * 2 ** (self.failures - 1), cap)
                log.warning("manager unreachable (%s); retry in %.1fs", exc, delay)
                next_report = 0.0
                await asyncio.sleep(delay)
                continue
            try:
                timeout = max(0.0, next_report - loop.time())
                await asyncio.wait_for(self._node.events_ready.wait(), timeout=timeout)
            except TimeoutError:
                pass

    async def _push_events(self) -> None:
        events = self._node.take_events()
        if not events:
            return
        try:
            await self._post(self._events_url, _dump(events))
        except BaseException:
            self._node.return_events(events)
            raise

    async def _post(self, url: str, payload: Any) -> None:
        try:
            async with self._http.post(
                url,
                json=payload,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as response:
                if response.status >= 300:
                    body = (await response.text())[:200]
                    raise ManagerUnreachable(f"{url} answered {response.status}: {body}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ManagerUnreachable(f"{url}: {exc!r}") from exc


def _dump(events: Sequence[ContainerEvent]) -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in events]
