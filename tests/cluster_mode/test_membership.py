"""Manager membership on the real etcd: one leader runs the leader-only loops, every manager is
registered for agents to find, leadership moves when the leader stops; registrations come back
after their lease is lost."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from agent.registry import LeasedKey, manager_urls
from cluster.config_store import ConfigStore
from cluster.factory import create_config_store
from manager.config import ManagerConfig
from manager.leader import LEADER_ONLY, ManagerMembership
from manager.reconcilers.base import Loop, Loops

pytestmark = pytest.mark.etcd


def etcd_url(prefix: str) -> str:
    address = os.environ.get("BERTH_TEST_ETCD")
    if not address:
        raise RuntimeError("BERTH_TEST_ETCD is not set: run through ./scripts/test")
    return f"etcd://{address}/{prefix}"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"membership-{uuid.uuid4().hex[:8]}"
    yield name
    store = create_config_store(etcd_url(name))
    try:
        for key in await store.get_prefix(""):
            await store.delete(key)
    finally:
        await store.close()


def manager(prefix: str, n: int, *, ttl_s: float = 2.0) -> ManagerMembership:
    config = ManagerConfig(
        config_store_url=etcd_url(prefix), public_url=f"http://127.0.0.1:{8080 + n}"
    )
    return ManagerMembership.from_config(config, identity=f"manager-{n}", ttl_s=ttl_s)


def counting_loops(counts: Counter[str], who: str) -> Loops:
    def step(name: str):  # type: ignore[no-untyped-def]
        async def run() -> bool:
            counts[f"{who}:{name}"] += 1
            return False

        return run

    return Loops(
        [Loop(name=n, step=step(n), interval_s=0.05) for n in ("liveness", "reap", "schedule")]
    )


async def wait_for(predicate, *, timeout_s: float = 15) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_only_the_leader_runs_leader_only_loops(prefix: str) -> None:
    counts: Counter[str] = Counter()
    members = [manager(prefix, 1), manager(prefix, 2)]
    loops = [counting_loops(counts, f"m{i}") for i in (1, 2)]
    for member, group in zip(members, loops, strict=True):
        member.guard(group)
        await member.start()
        group.start()
    try:
        await wait_for(lambda: sum(m.is_leader() for m in members) == 1)
        store = create_config_store(etcd_url(prefix))
        try:
            assert await manager_urls(store) == ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]
        finally:
            await store.close()
        leader = next(i for i, m in enumerate(members, 1) if m.is_leader())
        follower = 3 - leader
        counts.clear()
        await wait_for(lambda: counts[f"m{leader}:liveness"] >= 5)
        assert counts[f"m{follower}:liveness"] == 0 and counts[f"m{follower}:reap"] == 0
        assert counts[f"m{follower}:schedule"] > 0, "schedule runs on every manager"
        # The leader stops (resigns): the follower takes over and runs them now.
        await loops[leader - 1].stop()
        await members[leader - 1].stop()
        counts.clear()
        await wait_for(lambda: counts[f"m{follower}:liveness"] >= 3)
        assert members[follower - 1].is_leader()
    finally:
        for member, group in zip(members, loops, strict=True):
            await group.stop()
            await member.stop()
    assert LEADER_ONLY == {"liveness", "reap", "timeouts"}


async def test_a_file_store_manager_is_always_leader(tmp_path: object) -> None:
    config = ManagerConfig(config_store_url=f"file://{tmp_path}/store.json")
    member = ManagerMembership.from_config(config, identity="solo")
    await member.start()
    try:
        assert member.is_leader() and member.store is None
    finally:
        await member.stop()


async def test_a_lost_registration_comes_back(prefix: str) -> None:
    store: ConfigStore = create_config_store(etcd_url(prefix))
    value = json.dumps({"url": "http://10.0.0.1:6011"})
    key = LeasedKey(store, "agents/n1", value, ttl_s=2, retry_s=0.1)
    task = asyncio.create_task(key.run())
    try:
        await asyncio.wait_for(key.registered.wait(), 10)
        assert key._lease is not None
        await store.leases.revoke(key._lease)  # what an expired lease looks like
        assert await store.get("agents/n1") is None

        async def back() -> bool:
            return await store.get("agents/n1") == value

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await back():
            assert loop.time() < deadline, "never re-registered"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await key.revoke()
        assert await store.get("agents/n1") is None, "revoke removes the key at once"
        await store.close()
