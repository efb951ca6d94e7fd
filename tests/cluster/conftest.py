"""Fixtures for the coordination-layer suites: every bus/store test runs against the real Redis or
etcd started by scripts/test-services and against the in-process/file implementation.

Each test gets its own key prefix, so runs never see each other's streams or keys.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aetcd
import pytest
import redis.asyncio as aioredis

from cluster import (
    ConfigStore,
    EtcdConfigStore,
    EventBus,
    FileConfigStore,
    LocalBus,
    RedisStreamBus,
)

T = TypeVar("T")

# Short enough that redelivery and lease expiry tests finish in about a second.
TEST_VISIBILITY_TIMEOUT_S = 0.6
# Generous upper bound for anything that should happen "soon"; tests poll or wait on events.
DEADLINE_S = 10.0


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: run the suite through ./scripts/test (it starts the services)"
        )
    return value


def redis_url() -> str:
    return _env("BERTH_TEST_REDIS_URL")


def etcd_address() -> tuple[str, int]:
    host, _, port = _env("BERTH_TEST_ETCD").rpartition(":")
    return host, int(port)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


async def within(awaitable: Awaitable[T], timeout_s: float = DEADLINE_S) -> T:
    async with asyncio.timeout(timeout_s):
        return await awaitable


async def eventually(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = DEADLINE_S
) -> None:
    """Poll `predicate` until it holds; fail after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)


class BusKit:
    """Builds buses of one kind sharing one namespace. `peer()` is another member of the same
    cluster: another Redis client (another replica) or, in-process, the same LocalBus."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.prefix = unique("berthtest")
        self._buses: list[EventBus] = []
        self._local: dict[tuple[tuple[str, Any], ...], LocalBus] = {}

    def bus(self, **options: Any) -> EventBus:
        options.setdefault("visibility_timeout_s", TEST_VISIBILITY_TIMEOUT_S)
        if self.kind == "redis":
            made: EventBus = RedisStreamBus.from_url(redis_url(), prefix=self.prefix, **options)
        else:
            key = tuple(sorted(options.items()))
            if key not in self._local:
                self._local[key] = LocalBus(**options)
            made = self._local[key]
        self._buses.append(made)
        return made

    async def crash(self, bus: EventBus) -> None:
        """Make `bus` vanish like a crashed replica. In-process there is no separate replica:
        the consumer closing its stream without acking already is the crash."""
        if self.kind == "redis":
            await bus.close()

    async def cleanup(self) -> None:
        for made in self._buses:
            await made.close()
        if self.kind == "redis":
            client = aioredis.Redis.from_url(redis_url())
            async for key in client.scan_iter(match=f"{self.prefix}:*"):
                await client.delete(key)
            await client.aclose()


@pytest.fixture(params=["redis", "local"])
async def bus_kit(request: pytest.FixtureRequest) -> AsyncIterator[BusKit]:
    kit = BusKit(request.param)
    yield kit
    await kit.cleanup()


class StoreKit:
    """Builds stores of one kind sharing one namespace; each `store()` call is a separate client
    (another process, as far as the store can tell)."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.prefix = unique("berthtest")
        self.path = tmp_path / "config-store.json"
        self._stores: list[ConfigStore] = []
        # etcd grants whole seconds, at least 2; the file store honours fractions.
        self.ttl_s = 1.0 if kind == "etcd" else 0.5
        # Leaders refresh every third of this: roomy enough that a loaded test machine does not
        # make a healthy leader miss its refresh.
        self.leader_ttl_s = 2.0

    def store(self, *, prefix: str | None = None) -> ConfigStore:
        chosen = prefix or self.prefix
        if self.kind == "etcd":
            host, port = etcd_address()
            made: ConfigStore = EtcdConfigStore.connect(host, port, prefix="/" + chosen)
        else:
            made = FileConfigStore(self.path, prefix=chosen, poll_interval_s=0.05)
        self._stores.append(made)
        return made

    async def cleanup(self) -> None:
        for made in self._stores:
            await made.close()
        if self.kind == "etcd":
            host, port = etcd_address()
            async with aetcd.Client(host=host, port=port) as client:
                await client.delete_prefix(f"/{self.prefix}/".encode())


@pytest.fixture(params=["etcd", "file"])
async def store_kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreKit]:
    kit = StoreKit(request.param, tmp_path)
    yield kit
    await kit.cleanup()
