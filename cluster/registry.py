"""Processes publishing themselves in the config store, and finding each other there.

Every long-running process of a cluster keeps one key under its own lease while it runs; the key
disappears when the process deregisters (clean shutdown) or its lease expires (crash, partition):

| key | value (JSON) | lease | writer |
|---|---|---|---|
| `agents/<node_id>` | `{"node_id", "url", "resource_group", "version"}` | the agent's | agent |
| `managers/<identity>` | `{"id", "url"}` | the manager's | manager |
| `storage-proxies/<name>` | `{"name", "url", "public_url", "volumes"}` | the proxy's | proxy |

Registrations are discovery aids: PostgreSQL stays the source of truth, and a store outage never
stops a process (its key comes back, with a new lease, once the store answers again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from cluster.config_store import ConfigStore, Lease
from cluster.errors import ClusterError, LeaseExpiredError

log = logging.getLogger(__name__)

AGENTS_PREFIX = "agents/"
MANAGERS_PREFIX = "managers/"
STORAGE_PROXIES_PREFIX = "storage-proxies/"


class LeasedKey:
    """Keep `key` = `value` in the store under a lease of `ttl_s` while `run()` runs.

    The lease is refreshed every third of its TTL. When it is lost (expired while the store was
    unreachable, or the store restarted empty) a new lease is granted and the key written again.
    Store errors are logged and retried: registration helps discovery, it never stops a
    process."""

    def __init__(
        self, store: ConfigStore, key: str, value: str, *, ttl_s: float, retry_s: float = 1.0
    ) -> None:
        self.store = store
        self.key = key
        self.value = value
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.registered = asyncio.Event()
        self._lease: Lease | None = None

    async def run(self) -> None:
        while True:
            try:
                if self._lease is None:
                    lease = await self.store.leases.grant(self.ttl_s)
                    await self.store.put(self.key, self.value, lease=lease)
                    self._lease = lease
                    self.registered.set()
                    log.info("registered %s in the config store", self.key)
                await asyncio.sleep(self._lease.ttl_s / 3)
                await self.store.leases.refresh(self._lease)
                if await self.store.get(self.key) != self.value:
                    raise LeaseExpiredError(f"{self.key} was removed")
            except LeaseExpiredError as exc:
                log.warning("registration %s lost (%s); registering again", self.key, exc)
                self._forget()
            except ClusterError as exc:
                log.warning("config store unreachable for %s: %s; retrying", self.key, exc)
                await asyncio.sleep(self.retry_s)

    def _forget(self) -> None:
        self._lease = None
        self.registered.clear()

    async def revoke(self) -> None:
        """Remove the key now (clean shutdown), so others stop using this process at once."""
        lease, self._lease = self._lease, None
        self.registered.clear()
        if lease is not None:
            with contextlib.suppress(ClusterError):
                await self.store.leases.revoke(lease)


async def discover(store: ConfigStore, prefix: str) -> dict[str, dict[str, Any]]:
    """Every registration under `prefix` by its name (the key without the prefix); entries that
    are not JSON objects with a `url` are skipped."""
    found: dict[str, dict[str, Any]] = {}
    for key, raw in (await store.get_prefix(prefix)).items():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("url"), str):
            found[key[len(prefix) :]] = value
    return found


async def manager_urls(store: ConfigStore) -> list[str]:
    """Base URLs of the registered managers, sorted (each agent starts with the first)."""
    return sorted({entry["url"] for entry in (await discover(store, MANAGERS_PREFIX)).values()})


async def storage_proxy_urls(store: ConfigStore) -> dict[str, str]:
    """Registered storage proxies: name → base URL of the internal API."""
    return {name: e["url"] for name, e in (await discover(store, STORAGE_PROXIES_PREFIX)).items()}


__all__ = [
    "AGENTS_PREFIX",
    "MANAGERS_PREFIX",
    "STORAGE_PROXIES_PREFIX",
    "LeasedKey",
    "discover",
    "manager_urls",
    "storage_proxy_urls",
]
