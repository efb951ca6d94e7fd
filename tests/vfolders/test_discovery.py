"""Storage proxy discovery through the real etcd: a proxy process publishes
`storage-proxies/<name>` while it runs, the manager (no storage_proxy_url) finds it there and
uses it; a killed proxy's key expires with its lease and the manager stops using it; a cleanly
stopped proxy removes its key at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cluster.config_store import ConfigStore
from cluster.factory import create_config_store
from cluster.registry import storage_proxy_urls
from manager.config import ManagerConfig
from manager.state import STATE_KEY
from tests.factories import World, unique
from tests.live import free_port
from tests.vfolders.conftest import CLUSTER_SECRET, TOKEN_SECRET

pytestmark = pytest.mark.etcd

TTL_S = 2  # etcd's smallest lease


def etcd_url(prefix: str) -> str:
    address = os.environ.get("BERTH_TEST_ETCD")
    if not address:
        raise RuntimeError("BERTH_TEST_ETCD is not set: run through ./scripts/test")
    return f"etcd://{address}/{prefix}"


async def eventually(probe: Callable[[], Awaitable[Any]], *, timeout_s: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        assert loop.time() < deadline, f"{what} did not happen within {timeout_s}s"
        await asyncio.sleep(0.05)


@pytest.fixture
def store_url() -> str:
    return etcd_url(f"proxy-discovery-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ConfigStore]:
    etcd = create_config_store(store_url)
    try:
        yield etcd
    finally:
        for key in await etcd.get_prefix(""):
            await etcd.delete(key)
        await etcd.close()


@contextmanager
def proxy_process(workdir: Path, store_url: str, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m storage_proxy` with one posix volume, registering in `store_url`."""
    root = workdir / "local"
    root.mkdir(parents=True, exist_ok=True)
    config = workdir / f"{name}.toml"
    config.write_text(
        f'name = "{name}"\ninternal_port = {free_port()}\npublic_port = {free_port()}\n'
        f'config_store_url = "{store_url}"\nregistration_ttl_s = {TTL_S}\n'
        f'cluster_secret = "{CLUSTER_SECRET}"\ntoken_secret = "{TOKEN_SECRET}"\n'
        f'[[volumes]]\nname = "local"\nbackend = "posix"\noptions = {{ root = "{root}" }}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_STORAGE")}
    with open(workdir / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "storage_proxy", str(config)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def discovering(base: ManagerConfig, store_url: str) -> ManagerConfig:
    return base.model_copy(
        update={
            "config_store_url": store_url,
            "storage_proxy_url": None,
            "storage_token_secret": SecretStr(TOKEN_SECRET),
            "cluster_secret": SecretStr(CLUSTER_SECRET),
        }
    )


async def test_manager_finds_the_proxy_in_etcd_and_drops_it_when_it_dies(
    aiohttp_client: Any,
    manager_config: ManagerConfig,
    world: World,
    store: ConfigStore,
    store_url: str,
    tmp_path: Path,
) -> None:
    from manager.app import create_app

    app = create_app(discovering(manager_config, store_url))
    api = await aiohttp_client(app)
    locator = app[STATE_KEY].storage
    alice = await world.actor(await world.domain())

    async def create_folder() -> tuple[int, dict[str, Any]]:
        body = {"name": unique("f"), "volume": "local"}
        resp = await api.post("/api/v1/vfolders", json=body, headers=alice.headers)
        return resp.status, await resp.json()

    # No proxy registered yet: discovery is configured, but there is nothing to use.
    assert locator.configured and locator.url is None
    status, body = await create_folder()
    assert (status, body["code"]) == (503, "storage_unavailable"), body

    with proxy_process(tmp_path, store_url, "p1") as proc:
        urls = await eventually(
            lambda: storage_proxy_urls(store), timeout_s=30, what="the proxy's registration"
        )
        registered = json.loads(await store.get("storage-proxies/p1") or "{}")
        assert registered["volumes"] == ["local"] and urls == {"p1": registered["url"]}
        await eventually(
            lambda: _true(locator.url == urls["p1"]), timeout_s=10, what="the manager's lookup"
        )
        status, body = await create_folder()
        assert status == 201, body  # the manager called the discovered proxy
        assert (tmp_path / "local" / uuid.UUID(body["id"]).hex).is_dir()

        proc.send_signal(signal.SIGKILL)  # a crash: no deregistration
        proc.wait()
        assert await store.get("storage-proxies/p1") is not None, "only the lease removes it"
        await eventually(
            lambda: _absent(store, "storage-proxies/p1"),
            timeout_s=TTL_S + 8,
            what="the crashed proxy's key to expire",
        )
        await eventually(
            lambda: _true(locator.url is None), timeout_s=10, what="the manager to drop it"
        )
        status, body = await create_folder()
        assert (status, body["code"]) == (503, "storage_unavailable"), body

    # A restarted proxy is found again; a clean stop removes its key at once (no TTL wait).
    with proxy_process(tmp_path, store_url, "p1") as proc:
        await eventually(
            lambda: _true(locator.url is not None), timeout_s=30, what="the restarted proxy"
        )
        status, body = await create_folder()
        assert status == 201, body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert await store.get("storage-proxies/p1") is None, "deregistered on shutdown"
        await eventually(
            lambda: _true(locator.url is None), timeout_s=10, what="the manager to drop it"
        )


async def test_an_explicit_url_overrides_discovery(
    manager_config: ManagerConfig, store: ConfigStore, store_url: str
) -> None:
    from manager.storage_locator import StorageProxyLocator

    await store.put("storage-proxies/p1", json.dumps({"name": "p1", "url": "http://10.0.0.9:1"}))
    config = discovering(manager_config, store_url)
    fixed = StorageProxyLocator.from_config(
        config.model_copy(update={"storage_proxy_url": "http://127.0.0.1:6022"})
    )
    await fixed.start()
    try:
        assert fixed.store is None and fixed.url == "http://127.0.0.1:6022"
    finally:
        await fixed.stop()
    found = StorageProxyLocator.from_config(config)
    await found.start()
    try:
        assert found.url == "http://10.0.0.9:1"
    finally:
        await found.stop()


async def _true(value: bool) -> bool:
    return value


async def _absent(store: ConfigStore, key: str) -> bool:
    return await store.get(key) is None
