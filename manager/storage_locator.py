"""Where the manager finds the storage proxy's internal API.

- `storage_proxy_url` set (always with `berth up`): that URL, nothing is looked up. It also
  overrides discovery in a cluster.
- unset, with an `etcd://` config store: the proxy registered under `storage-proxies/<name>`
  (`storage_proxy/registration.py`). The locator watches the prefix and keeps the current choice
  in memory, so a request never waits for etcd: `storage_proxy_name` when set, else the first
  registered name. When no proxy is registered (it stopped, or its lease expired after a crash)
  `url` is None and folder operations answer `503 storage_unavailable` until one registers.
  While etcd is unreachable the last known proxy is kept.
- unset, without etcd: no storage proxy; folder operations answer `400 storage_not_configured`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web

from cluster.config_store import ConfigStore
from cluster.errors import ClusterError
from cluster.factory import create_config_store
from cluster.registry import STORAGE_PROXIES_PREFIX, discover
from manager.config import ManagerConfig

log = logging.getLogger("berth.manager.storage")

RETRY_S = 2.0
FIRST_LOOKUP_S = 3.0  # start-up waits this long at most for the first listing


class StorageProxyLocator:
    def __init__(
        self,
        *,
        explicit: str | None,
        store: ConfigStore | None = None,
        name: str | None = None,
    ) -> None:
        self.explicit = explicit
        self.store = store if not explicit else None
        self.name = name
        self._discovered: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed = asyncio.Event()  # set on every change of `url` (tests, logs)

    @classmethod
    def from_config(cls, config: ManagerConfig) -> StorageProxyLocator:
        explicit = config.storage_proxy_url
        if explicit or urlsplit(config.config_store_url).scheme != "etcd":
            return cls(explicit=explicit)
        store = create_config_store(config.config_store_url)
        return cls(explicit=None, store=store, name=config.storage_proxy_name)

    @property
    def configured(self) -> bool:
        """Whether this manager has a storage proxy at all (fixed or discovered)."""
        return bool(self.explicit) or self.store is not None

    @property
    def url(self) -> str | None:
        """The internal API's base URL now; None when none is configured or registered."""
        return self.explicit or self._discovered

    async def start(self) -> None:
        """Look the proxy up once (bounded: an unreachable etcd must not block start-up), then
        follow changes in the background."""
        if self.store is None or self._task is not None:
            return
        try:
            async with asyncio.timeout(FIRST_LOOKUP_S):
                await self.refresh()
        except (ClusterError, TimeoutError) as exc:
            log.warning("storage proxy lookup failed at start-up: %r", exc)
        self._task = asyncio.create_task(self._follow(), name="storage-proxy-locator")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.store is not None:
            await self.store.close()

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        """`app.cleanup_ctx.append(locator.cleanup_ctx)`: follow while the app runs."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def refresh(self) -> None:
        """List the registrations and pick one (store errors propagate)."""
        assert self.store is not None
        found = await discover(self.store, STORAGE_PROXIES_PREFIX)
        if self.name is not None:
            chosen = found.get(self.name)
        else:
            chosen = found[min(found)] if found else None
        url = chosen["url"].rstrip("/") if chosen else None
        if url != self._discovered:
            log.info(
                "storage proxy changed", extra={"from": self._discovered, "to": url or "(none)"}
            )
            self._discovered = url
            self.changed.set()

    async def _follow(self) -> None:
        """Re-list on every change under the prefix (puts, deletes, lease expiries); reopen
        the watch after a store error or when it ends."""
        assert self.store is not None
        while True:
            try:
                async with self.store.watch_prefix(STORAGE_PROXIES_PREFIX) as events:
                    await self.refresh()
                    async for _event in events:
                        await self.refresh()
            except ClusterError as exc:
                log.warning("storage proxy discovery interrupted; retrying: %r", exc)
            await asyncio.sleep(RETRY_S)


__all__ = ["StorageProxyLocator"]
