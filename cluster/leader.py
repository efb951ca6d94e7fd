"""Leader election over a `ConfigStore` lease, for loops that must run on one replica only.

The leader is whoever created the key `leader/<name>` (value: its identity) bound to its own
lease. Campaigning is a compare-and-create (`put(..., if_absent=True)`, an etcd transaction on
the key's version or a locked file update), so two contenders can never both win. The leader
refreshes its lease every third of the TTL; when it stops (crash, partition, `__aexit__`) the
lease ends, the key vanishes and a follower watching the key wins the next campaign.

A leader considers itself leader only until `ttl_s` after the last refresh it *sent* that
succeeded; the store keeps the lease at least that long, so the old leader steps down before a
new one can be elected (given clocks that tick at the same rate). Work done as leader should
still be idempotent and guarded in the database: leadership is an optimisation that keeps
replicas from duplicating effort, not a lock that protects data.

    async with LeaderElection(store, "scheduler", identity=replica_id, ttl_s=10) as election:
        await election.run(scheduler_loop)   # runs while leader, cancelled on loss, re-run on win
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from cluster.config_store import ConfigStore, Lease
from cluster.errors import ClusterError, LeaseExpiredError

log = logging.getLogger(__name__)

# Long enough to ride out a slow etcd round trip or a GC pause, short enough that a crashed
# leader's loops resume elsewhere within seconds.
DEFAULT_TTL_S = 10.0
LEADER_KEY_PREFIX = "leader/"


async def current_leader(store: ConfigStore, name: str) -> str | None:
    """Identity of the current leader of `name`, None when there is none."""
    return await store.get(LEADER_KEY_PREFIX + name)


class LeaderElection:
    """Campaign for `leader/<name>` as `identity` until the context exits."""

    def __init__(
        self,
        store: ConfigStore,
        name: str,
        identity: str,
        ttl_s: float = DEFAULT_TTL_S,
        *,
        retry_interval_s: float | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.store = store
        self.name = name
        self.identity = identity
        self.key = LEADER_KEY_PREFIX + name
        self.ttl_s = ttl_s
        # Followers re-check at least this often even if a watch event is lost.
        self.retry_interval_s = retry_interval_s if retry_interval_s is not None else ttl_s / 2
        self._lease: Lease | None = None
        self._valid_until = 0.0
        self._is_leader = asyncio.Event()
        self._is_follower = asyncio.Event()
        self._is_follower.set()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start(self) -> None:
        """Begin campaigning in the background (what `async with` does)."""
        if self._task is None:
            self._task = asyncio.create_task(self._campaign(), name=f"leader:{self.name}")

    async def stop(self) -> None:
        """Stop campaigning and resign: revoke the lease so a follower takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._step_down(revoke=True)

    @property
    def is_leader(self) -> bool:
        """True while this contender holds the key and its lease is surely alive."""
        return self._is_leader.is_set() and time.monotonic() < self._valid_until

    @property
    def lease(self) -> Lease | None:
        """The lease bound to the leader key while leader, else None."""
        return self._lease if self._is_leader.is_set() else None

    async def wait_until_leader(self) -> None:
        await self._is_leader.wait()

    async def wait_until_lost(self) -> None:
        """Return once this contender is not (or no longer) leader."""
        await self._is_follower.wait()

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work()` whenever leader; cancel it when leadership is lost; repeat forever.

        An exception from `work` propagates (after which this contender still campaigns until
        the context exits).
        """
        while True:
            await self.wait_until_leader()
            task = asyncio.ensure_future(work())
            lost = asyncio.ensure_future(self.wait_until_lost())
            try:
                await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                lost.cancel()
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error
            if task.done() and not self._is_follower.is_set():
                # `work` returned on its own while still leader: wait for a new term.
                await self.wait_until_lost()

    async def _campaign(self) -> None:
        while True:
            try:
                granted_at = time.monotonic()
                lease = await self.store.leases.grant(self.ttl_s)
                if await self.store.put(self.key, self.identity, lease=lease, if_absent=True):
                    self._become_leader(lease, valid_until=granted_at + self.ttl_s)
                    await self._hold(lease)
                    await self._step_down(revoke=True)
                else:
                    await self.store.leases.revoke(lease)
                    await self._wait_for_vacancy()
            except Exception as exc:  # the campaign must outlive any store failure
                log.warning("leader election %s: %r; retrying", self.name, exc)
                await self._step_down(revoke=False)
                await asyncio.sleep(self.retry_interval_s)

    def _become_leader(self, lease: Lease, *, valid_until: float) -> None:
        self._lease = lease
        self._valid_until = valid_until
        self._is_follower.clear()
        self._is_leader.set()
        log.info("leader election %s: %s is leader", self.name, self.identity)

    async def _hold(self, lease: Lease) -> None:
        """Refresh the lease until it is lost; return on loss."""
        interval = self.ttl_s / 3
        while True:
            await asyncio.sleep(max(0.0, min(interval, self._valid_until - time.monotonic())))
            remaining = self._valid_until - time.monotonic()
            if remaining <= 0:
                log.warning("leader election %s: could not refresh in time", self.name)
                return
            sent_at = time.monotonic()
            try:
                async with asyncio.timeout(remaining):
                    await self.store.leases.refresh(lease)
                    owner = await self.store.get(self.key)
            except LeaseExpiredError:
                log.warning("leader election %s: lease expired", self.name)
                return
            except (ClusterError, TimeoutError) as exc:
                log.warning("leader election %s: refresh failed: %s", self.name, exc)
                continue
            if owner != self.identity:
                log.warning("leader election %s: key now held by %r", self.name, owner)
                return
            self._valid_until = sent_at + self.ttl_s

    async def _step_down(self, *, revoke: bool) -> None:
        lease, self._lease = self._lease, None
        was_leader = self._is_leader.is_set()
        self._is_leader.clear()
        self._is_follower.set()
        self._valid_until = 0.0
        if was_leader:
            log.info("leader election %s: %s stepped down", self.name, self.identity)
        if revoke and lease is not None:
            try:
                await self.store.leases.revoke(lease)
            except ClusterError as exc:  # it expires on its own anyway
                log.warning("leader election %s: revoke failed: %s", self.name, exc)

    async def _wait_for_vacancy(self) -> None:
        """Return when the key was deleted, or after the retry interval at the latest."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.retry_interval_s):
                async with self.store.watch_prefix(self.key) as events:
                    if await self.store.get(self.key) is None:
                        return
                    async for event in events:
                        if event.key == self.key and event.kind == "delete":
                            return
