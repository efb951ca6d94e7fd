"""One manager's place in a cluster: its leased `managers/<identity>` key (agents find managers
there) and the leader lease that decides where the leader-only loops run.

With an `etcd://` config store, loops in `LEADER_ONLY` (node liveness, the orphan reaper, session
timeouts) run only on the leader: they sweep the whole cluster, so running them on every replica
duplicates work and agent calls. Schedule, dispatch and terminate run everywhere (row leases and
the guarded commit keep them correct). With a `file://` store (one machine, one manager) this
manager is always the leader and nothing is registered.

Wiring in the composition root (`manager/app.py`, `_background_loops`):

    membership = ManagerMembership.from_config(state.config, identity=owner)
    membership.guard(loops)            # before loops.start()
    await membership.start()
    ...
    await membership.stop()            # in the finally block, after loops.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from cluster.config_store import ConfigStore
from cluster.factory import create_config_store
from cluster.leader import LeaderElection
from cluster.registry import MANAGERS_PREFIX, LeasedKey
from manager.config import ManagerConfig
from manager.reconcilers.base import Loops

log = logging.getLogger("berth.manager.leader")

LEADER_ONLY = frozenset({"liveness", "reap", "timeouts"})
ELECTION_NAME = "manager-loops"
DEFAULT_TTL_S = 10.0


class ManagerMembership:
    """Hold (or campaign for) the leader lease and advertise this manager's URL.

    `store=None` means single-manager mode: `is_leader()` is always true."""

    def __init__(
        self,
        store: ConfigStore | None,
        *,
        identity: str,
        public_url: str,
        ttl_s: float = DEFAULT_TTL_S,
    ) -> None:
        self.store = store
        self.identity = identity
        self.public_url = public_url
        self.election = (
            LeaderElection(store, ELECTION_NAME, identity=identity, ttl_s=ttl_s)
            if store is not None
            else None
        )
        self.registration = (
            LeasedKey(
                store,
                MANAGERS_PREFIX + identity.replace(":", "-"),
                json.dumps({"id": identity, "url": public_url}, sort_keys=True),
                ttl_s=ttl_s,
            )
            if store is not None
            else None
        )
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls, config: ManagerConfig, *, identity: str, ttl_s: float = DEFAULT_TTL_S
    ) -> ManagerMembership:
        """Clustered when the config store is etcd; single-manager otherwise."""
        if urlsplit(config.config_store_url).scheme != "etcd":
            return cls(None, identity=identity, public_url=config.public_url)
        store = create_config_store(config.config_store_url)
        return cls(store, identity=identity, public_url=config.public_url, ttl_s=ttl_s)

    def is_leader(self) -> bool:
        return self.election is None or self.election.is_leader

    def guard(self, loops: Loops) -> None:
        """Make the leader-only loops skip their step on followers."""
        for name in LEADER_ONLY & loops.by_name.keys():
            loop = loops.by_name[name]
            loop.step = self._only_on_leader(loop.step)

    def _only_on_leader(
        self, step: Callable[[], Awaitable[bool]]
    ) -> Callable[[], Awaitable[bool]]:
        async def guarded() -> bool:
            if not self.is_leader():
                return False
            return await step()

        return guarded

    async def start(self) -> None:
        if self.election is None or self.registration is None:
            return
        self.election.start()
        self._task = asyncio.create_task(self.registration.run(), name="manager-registration")

    async def stop(self) -> None:
        """Resign and deregister, so the other managers and the agents react at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.election is not None:
            await self.election.stop()
        if self.registration is not None:
            await self.registration.revoke()
        if self.store is not None:
            await self.store.close()


__all__ = ["ELECTION_NAME", "LEADER_ONLY", "ManagerMembership"]
