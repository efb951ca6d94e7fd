"""The proxy's volumes: backend instances built from config, started once for both APIs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from typing import Any

from storage_proxy.backends.base import Lifecycle, QuotaSupport, VolumeBackend
from storage_proxy.config import StorageProxyConfig, VolumeConfig
from storage_proxy.contract import VolumeInfo
from storage_proxy.errors import UploadOffsetMismatch, VolumeNotFound

ENTRY_POINT_GROUP = "berth.volumes"


def build_backend(volume: VolumeConfig) -> VolumeBackend:
    """Instantiate the backend class registered under `volume.backend` in `berth.volumes`."""
    matches = entry_points(group=ENTRY_POINT_GROUP, name=volume.backend)
    if not matches:
        raise ValueError(f"no volume backend named {volume.backend!r} ({ENTRY_POINT_GROUP})")
    cls: Any = next(iter(matches)).load()
    backend: VolumeBackend = cls.from_options(volume.name, volume.options)
    return backend


class Volumes:
    """Name → backend, plus the per-upload write locks of this process.

    Both aiohttp apps enter `lease()` from their cleanup contexts; the first entry starts the
    backends and the last exit closes them, so either app can also run alone (tests).
    """

    def __init__(self, backends: dict[str, VolumeBackend]) -> None:
        self._backends = backends
        self._users = 0
        self._guard = asyncio.Lock()
        self._upload_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_config(cls, config: StorageProxyConfig) -> Volumes:
        return cls({v.name: build_backend(v) for v in config.volumes})

    def get(self, name: str) -> VolumeBackend:
        try:
            return self._backends[name]
        except KeyError:
            raise VolumeNotFound(f"volume {name!r} is not served by this proxy") from None

    def info(self) -> list[VolumeInfo]:
        return [
            VolumeInfo(
                name=name,
                backend=type(backend).__name__,
                capabilities=["quota"] if isinstance(backend, QuotaSupport) else [],
            )
            for name, backend in self._backends.items()
        ]

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Volumes]:
        async with self._guard:
            if self._users == 0:
                for backend in self._backends.values():
                    if isinstance(backend, Lifecycle):
                        await backend.start()
            self._users += 1
        try:
            yield self
        finally:
            async with self._guard:
                self._users -= 1
                if self._users == 0:
                    for backend in self._backends.values():
                        if isinstance(backend, Lifecycle):
                            await backend.close()

    @asynccontextmanager
    async def upload_lock(self, key: str) -> AsyncIterator[None]:
        """Exclusive right to write one upload; a second writer is refused, not queued."""
        lock = self._upload_locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            raise UploadOffsetMismatch("another request is writing this upload")
        async with lock:
            try:
                yield
            finally:
                self._upload_locks.pop(key, None)
