"""One conformance suite for every `ConfigStore`: EtcdConfigStore (real etcd) and FileConfigStore,
plus leader election on top of each."""

from __future__ import annotations

import asyncio

import pytest

from cluster import (
    InvalidNameError,
    LeaderElection,
    LeaseExpiredError,
    Watch,
    WatchEvent,
    current_leader,
)
from tests.cluster.conftest import StoreKit, eventually, unique, within


async def next_event(watch: Watch) -> WatchEvent:
    return await within(anext(watch))


class TestKeyValue:
    async def test_put_get_overwrite_and_delete(self, store_kit: StoreKit) -> None:
        store = store_kit.store()
        assert await store.get("config/missing") is None
        assert await store.put("config/scheduler", '{"policy":"fifo"}') is True
        assert await store.get("config/scheduler") == '{"policy":"fifo"}'
        await store.put("config/scheduler", '{"policy":"drf"}')
        assert await store.get("config/scheduler") == '{"policy":"drf"}'
        assert await store.delete("config/scheduler") is True
        assert await store.get("config/scheduler") is None
        assert await store.delete("config/scheduler") is False

    async def test_put_if_absent_creates_once(self, store_kit: StoreKit) -> None:
        store, other = store_kit.store(), store_kit.store()
        assert await store.put("locks/x", "first", if_absent=True) is True
        assert await other.put("locks/x", "second", if_absent=True) is False
        assert await other.get("locks/x") == "first"

    async def test_concurrent_creates_have_exactly_one_winner(self, store_kit: StoreKit) -> None:
        stores = [store_kit.store() for _ in range(4)]
        results = await asyncio.gather(
            *(s.put("race/key", f"v{i}", if_absent=True) for i, s in enumerate(stores))
        )
        assert sorted(results) == [False, False, False, True]
        winner = results.index(True)
        assert await stores[0].get("race/key") == f"v{winner}"

    async def test_get_prefix_returns_relative_keys_under_the_prefix_only(
        self, store_kit: StoreKit
    ) -> None:
        store = store_kit.store()
        await store.put("volumes/b", "2")
        await store.put("volumes/a", "1")
        await store.put("volumesx/c", "3")
        await store.put("agents/n1", "4")
        assert await store.get_prefix("volumes/") == {"volumes/a": "1", "volumes/b": "2"}
        assert list(await store.get_prefix("volumes/")) == ["volumes/a", "volumes/b"]
        everything = await store.get_prefix("")
        assert everything == {
            "volumes/a": "1",
            "volumes/b": "2",
            "volumesx/c": "3",
            "agents/n1": "4",
        }

    async def test_stores_with_different_prefixes_do_not_see_each_other(
        self, store_kit: StoreKit
    ) -> None:
        mine = store_kit.store()
        theirs = store_kit.store(prefix=unique("othercluster"))
        await mine.put("config/x", "mine")
        await theirs.put("config/x", "theirs")
        assert await mine.get("config/x") == "mine"
        assert await theirs.get("config/x") == "theirs"
        assert await theirs.get_prefix("") == {"config/x": "theirs"}
        await theirs.delete("config/x")

    async def test_invalid_keys_are_rejected(self, store_kit: StoreKit) -> None:
        store = store_kit.store()
        for bad in ("", "/absolute", "has space", "nul\0byte"):
            with pytest.raises(InvalidNameError):
                await store.put(bad, "v")


class TestWatch:
    async def test_watch_sees_puts_and_deletes_under_its_prefix(self, store_kit: StoreKit) -> None:
        store, writer = store_kit.store(), store_kit.store()
        await store.put("volumes/old", "0")
        async with store.watch_prefix("volumes/") as watch:
            await writer.put("volumes/a", "1")
            assert await next_event(watch) == WatchEvent("put", "volumes/a", "1")
            await writer.put("other/ignored", "x")
            await writer.put("volumes/a", "2")
            assert await next_event(watch) == WatchEvent("put", "volumes/a", "2")
            await writer.delete("volumes/old")
            assert await next_event(watch) == WatchEvent("delete", "volumes/old", None)

    async def test_a_closed_watch_ends_its_iteration(self, store_kit: StoreKit) -> None:
        store = store_kit.store()
        watch = store.watch_prefix("w/")
        async with watch:
            reader = asyncio.create_task(anext(watch, None))
            await asyncio.sleep(0)
            await watch.aclose()
            assert await within(reader) is None
        assert watch.closed


class TestLeases:
    async def test_keys_bound_to_an_expired_lease_disappear(self, store_kit: StoreKit) -> None:
        store = store_kit.store()
        lease = await store.leases.grant(store_kit.ttl_s)
        assert lease.ttl_s >= store_kit.ttl_s
        await store.put("agents/n1", '{"addr":"10.0.0.1"}', lease=lease)
        await store.put("agents/static", "kept")
        async with store.watch_prefix("agents/") as watch:
            assert await store.get("agents/n1") is not None
            event = await next_event(watch)
        assert event == WatchEvent("delete", "agents/n1", None)
        assert await store.get("agents/n1") is None
        assert await store.get("agents/static") == "kept"
        with pytest.raises(LeaseExpiredError):
            await store.leases.refresh(lease)

    async def test_refreshing_keeps_a_lease_alive_past_its_ttl(self, store_kit: StoreKit) -> None:
        store = store_kit.store()
        lease = await store.leases.grant(store_kit.ttl_s)
        await store.put("agents/alive", "1", lease=lease)
        loop = asyncio.get_running_loop()
        until = loop.time() + lease.ttl_s * 1.8
        while loop.time() < until:
            await store.leases.refresh(lease)
            await asyncio.sleep(lease.ttl_s / 4)
        assert await store.get("agents/alive") == "1"
        await store.leases.revoke(lease)

    async def test_revoking_deletes_keys_at_once_and_is_idempotent(
        self, store_kit: StoreKit
    ) -> None:
        store, other = store_kit.store(), store_kit.store()
        lease = await store.leases.grant(30)
        await store.put("agents/n2", "1", lease=lease)
        await store.put("agents/n3", "1", lease=lease)
        await other.leases.revoke(lease)
        assert await store.get_prefix("agents/") == {}
        await store.leases.revoke(lease)
        with pytest.raises(LeaseExpiredError):
            await store.leases.refresh(lease)
        with pytest.raises(LeaseExpiredError):
            await store.put("agents/n4", "1", lease=lease)
        assert await store.get("agents/n4") is None


async def wait_for_one_leader(*elections: LeaderElection) -> LeaderElection:
    waiters = [asyncio.ensure_future(e.wait_until_leader()) for e in elections]
    try:
        await within(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED))
    finally:
        for waiter in waiters:
            waiter.cancel()
    leaders = [e for e in elections if e.is_leader]
    assert len(leaders) == 1, [e.identity for e in leaders]
    return leaders[0]


class TestLeaderElection:
    async def test_exactly_one_of_two_contenders_leads(self, store_kit: StoreKit) -> None:
        name = unique("scheduler")
        a = LeaderElection(store_kit.store(), name, "replica-a", ttl_s=store_kit.leader_ttl_s)
        b = LeaderElection(store_kit.store(), name, "replica-b", ttl_s=store_kit.leader_ttl_s)
        async with a, b:
            leader = await wait_for_one_leader(a, b)
            follower = b if leader is a else a
            assert await current_leader(store_kit.store(), name) == leader.identity
            # Through two of the follower's campaign rounds it must not become leader.
            with pytest.raises(TimeoutError):
                await within(follower.wait_until_leader(), follower.retry_interval_s * 2)
            assert leader.is_leader and not follower.is_leader

    async def test_the_follower_takes_over_when_the_leader_lease_is_revoked(
        self, store_kit: StoreKit
    ) -> None:
        name = unique("reaper")
        admin = store_kit.store()
        a = LeaderElection(store_kit.store(), name, "replica-a", ttl_s=store_kit.leader_ttl_s)
        b = LeaderElection(store_kit.store(), name, "replica-b", ttl_s=store_kit.leader_ttl_s)
        async with a, b:
            old = await wait_for_one_leader(a, b)
            new = b if old is a else a
            assert old.lease is not None
            await admin.leases.revoke(old.lease)
            await within(new.wait_until_leader())
            await within(old.wait_until_lost())
            assert new.is_leader and not old.is_leader
            assert await current_leader(admin, name) == new.identity

    async def test_a_crashed_leader_is_replaced_when_its_lease_expires(
        self, store_kit: StoreKit
    ) -> None:
        name = unique("culler")
        ghost = store_kit.store()
        # A leader that won and then died: it never refreshes its lease.
        lease = await ghost.leases.grant(store_kit.ttl_s)
        assert await ghost.put(f"leader/{name}", "ghost", lease=lease, if_absent=True)
        async with LeaderElection(
            store_kit.store(), name, "replica-b", ttl_s=store_kit.leader_ttl_s
        ) as successor:
            assert not successor.is_leader
            await within(successor.wait_until_leader())
            assert await current_leader(ghost, name) == "replica-b"

    async def test_leaving_the_context_resigns_and_hands_over(self, store_kit: StoreKit) -> None:
        name = unique("gc")
        a = LeaderElection(store_kit.store(), name, "replica-a", ttl_s=30)
        b = LeaderElection(store_kit.store(), name, "replica-b", ttl_s=30)
        try:
            async with a:
                await within(a.wait_until_leader())
                b.start()
                assert not b.is_leader
            # Far quicker than the 30 s TTL: resigning revoked the lease.
            await within(b.wait_until_leader(), timeout_s=5)
            assert not a.is_leader
            assert await current_leader(store_kit.store(), name) == "replica-b"
        finally:
            await b.stop()

    async def test_run_executes_work_only_while_leader(self, store_kit: StoreKit) -> None:
        name = unique("loop")
        admin = store_kit.store()
        started: list[str] = []
        cancelled: list[str] = []

        def work_for(identity: str) -> object:
            async def work() -> None:
                started.append(identity)
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    cancelled.append(identity)
                    raise

            return work

        a = LeaderElection(store_kit.store(), name, "replica-a", ttl_s=store_kit.leader_ttl_s)
        b = LeaderElection(store_kit.store(), name, "replica-b", ttl_s=store_kit.leader_ttl_s)
        async with a, b:
            runners = [
                asyncio.create_task(a.run(work_for("replica-a"))),  # type: ignore[arg-type]
                asyncio.create_task(b.run(work_for("replica-b"))),  # type: ignore[arg-type]
            ]
            try:
                old = await wait_for_one_leader(a, b)

                async def started_once() -> bool:
                    return started == [old.identity]

                await eventually(started_once)
                assert old.lease is not None
                await admin.leases.revoke(old.lease)

                async def handed_over() -> bool:
                    return len(started) == 2 and cancelled == [old.identity]

                await eventually(handed_over)
                assert started[1] != old.identity
            finally:
                for runner in runners:
                    runner.cancel()
                await asyncio.gather(*runners, return_exceptions=True)
