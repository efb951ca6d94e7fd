"""`ConfigStore` on etcd v3 through aetcd (asyncio gRPC client).

Every key lives under the store's prefix: key `agents/n1` with prefix `/berth` is the etcd key
`/berth/agents/n1`, so several clusters and test runs share one etcd without seeing each other.
Compare-and-create is an etcd transaction on the key's version (0 means absent).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import aetcd
from aetcd.exceptions import ClientError

from cluster.config_store import Lease, Watch, WatchEvent, validate_key
from cluster.errors import ConfigStoreError, LeaseExpiredError

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_PREFIX = "/berth"
# Per-RPC deadline: a hung etcd must surface as an error, not a stuck reconciler.
DEFAULT_TIMEOUT_S = 10


def _translate_errors(
    fn: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Map aetcd's exceptions onto ours, so callers handle one error tree."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except ClientError as exc:
            if "lease not found" in str(exc):
                raise LeaseExpiredError("the lease expired or was revoked") from exc
            raise ConfigStoreError(f"etcd request failed: {exc}") from exc

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


class EtcdConfigStore:
    """`ConfigStore` over one etcd cluster; see `cluster.config_store` for the contract."""

    def __init__(
        self, client: aetcd.Client, *, prefix: str = DEFAULT_PREFIX, owns_client: bool = True
    ) -> None:
        self._client = client
        self.prefix = _normalise_prefix(prefix)
        self._owns_client = owns_client
        self._leases = _EtcdLeases(client)
        self._watches: set[_EtcdWatch] = set()

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: int = DEFAULT_TIMEOUT_S,
    ) -> EtcdConfigStore:
        """A store with its own client; the gRPC channel opens on first use."""
        return cls(aetcd.Client(host=host, port=port, timeout=timeout_s), prefix=prefix)

    @property
    def leases(self) -> _EtcdLeases:
        return self._leases

    @_translate_errors
    async def get(self, key: str) -> str | None:
        found = await self._client.get(self._full(key))
        return None if found is None else found.value.decode()

    @_translate_errors
    async def put(
        self, key: str, value: str, *, lease: Lease | None = None, if_absent: bool = False
    ) -> bool:
        full = self._full(key)
        lease_id = lease.id if lease is not None else None
        if not if_absent:
            await self._client.put(full, value.encode(), lease=lease_id)
            return True
        tx = self._client.transactions
        succeeded, _ = await self._client.transaction(
            compare=[tx.version(full) == 0],
            success=[tx.put(full, value.encode(), lease=lease_id)],
            failure=[],
        )
        return bool(succeeded)

    @_translate_errors
    async def delete(self, key: str) -> bool:
        return await self._client.delete(self._full(key)) is not None

    @_translate_errors
    async def get_prefix(self, prefix: str) -> dict[str, str]:
        found = await self._client.get_prefix(
            self._full(prefix, allow_empty=True), sort_order="ascend"
        )
        return {self._relative(kv.key): kv.value.decode() for kv in found}

    def watch_prefix(self, prefix: str) -> Watch:
        return _EtcdWatch(self, self._full(prefix, allow_empty=True))

    async def close(self) -> None:
        for watch in list(self._watches):
            await watch.aclose()
        if self._owns_client:
            await self._client.close()

    def _full(self, key: str, *, allow_empty: bool = False) -> bytes:
        return f"{self.prefix}/{validate_key(key, allow_empty=allow_empty)}".encode()

    def _relative(self, full: bytes) -> str:
        return full.decode()[len(self.prefix) + 1 :]


class _EtcdLeases:
    def __init__(self, client: aetcd.Client) -> None:
        self._client = client

    @_translate_errors
    async def grant(self, ttl_s: float) -> Lease:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        granted = await self._client.lease(max(1, math.ceil(ttl_s)))
        return Lease(id=granted.id, ttl_s=float(granted.ttl))

    @_translate_errors
    async def refresh(self, lease: Lease) -> None:
        reply = await self._client.refresh_lease(lease.id)
        # etcd answers a keep-alive for an unknown lease with TTL 0 rather than an error.
        if reply is None or reply.TTL <= 0:
            raise LeaseExpiredError(f"lease {lease.id:x} expired or was revoked")

    @_translate_errors
    async def revoke(self, lease: Lease) -> None:
        try:
            await self._client.revoke_lease(lease.id)
        except ClientError as exc:
            if "lease not found" not in str(exc):
                raise


class _EtcdWatch(Watch):
    def __init__(self, store: EtcdConfigStore, full_prefix: bytes) -> None:
        super().__init__()
        self._store = store
        self._full_prefix = full_prefix
        self._watch: Any = None
        self._events: AsyncIterator[Any] | None = None

    async def _open(self) -> None:
        # watch_prefix returns once etcd has created the watch: later changes are all reported.
        try:
            self._watch = await self._store._client.watch_prefix(self._full_prefix)
        except ClientError as exc:
            raise ConfigStoreError(f"etcd watch failed: {exc}") from exc
        self._events = aiter(self._watch)
        self._store._watches.add(self)

    async def _next(self) -> WatchEvent | None:
        if self._events is None:
            return None
        try:
            event = await anext(self._events)
        except StopAsyncIteration:
            return None
        except ClientError as exc:
            if self.closed:
                return None
            raise ConfigStoreError(f"etcd watch failed: {exc}") from exc
        key = self._store._relative(event.kv.key)
        if event.kind == "DELETE":
            return WatchEvent(kind="delete", key=key, value=None)
        return WatchEvent(kind="put", key=key, value=event.kv.value.decode())

    async def _close(self) -> None:
        self._store._watches.discard(self)
        if self._watch is not None:
            try:
                await self._watch.cancel()
            except ClientError:
                pass  # the channel is already gone; nothing left to cancel


def _normalise_prefix(prefix: str) -> str:
    prefix = prefix.strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    if any(ch.isspace() for ch in prefix):
        raise ValueError(f"invalid etcd prefix {prefix!r}")
    return prefix
