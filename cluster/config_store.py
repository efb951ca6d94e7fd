"""The config store: cluster-wide configuration, node registration and leader leases.

A small key-value contract with two implementations, `EtcdConfigStore` (the cluster) and
`FileConfigStore` (the one-machine mode). Keys are `/`-separated strings relative to the store's
namespace prefix (`config/volumes/local`, `agents/node-1`, `leader/scheduler`); values are text,
JSON by convention. See docs/cluster.md for the key layout.

Contract shared by every implementation (and checked by one conformance suite):

* `put` overwrites, `put(..., if_absent=True)` creates only when the key does not exist and says
  whether it did; that compare-and-create is atomic across processes and hosts.
* A key put with a lease disappears when the lease expires or is revoked (a delete event is
  watched). A lease lives for at least its TTL after its grant or last refresh; a store may
  round the TTL up (etcd grants whole seconds, at least 2).
* `watch_prefix` yields a `WatchEvent` for every change under the prefix made after the watch
  was entered. etcd reports every revision; the file store reports the net change between two
  polls (a put followed by a delete within one poll interval may not be seen).
* Errors: `LeaseExpiredError` for an unknown or expired lease, `ConfigStoreError` when the
  backend is unreachable or its data is corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from cluster.errors import InvalidNameError
from cluster.streams import AsyncStream


@dataclass(frozen=True)
class Lease:
    """A granted lease. `ttl_s` is what the store granted, possibly more than requested."""

    id: int
    ttl_s: float


@dataclass(frozen=True)
class WatchEvent:
    """A change under a watched prefix; `value` is None for deletes (incl. lease expiry)."""

    kind: Literal["put", "delete"]
    key: str
    value: str | None


class Watch(AsyncStream[WatchEvent]):
    """Changes under a prefix from `ConfigStore.watch_prefix` (see `cluster.streams`)."""


@runtime_checkable
class LeaseManager(Protocol):
    """Leases of one store: keys bound to a lease vanish when it expires."""

    async def grant(self, ttl_s: float) -> Lease:
        """A new lease that expires `ttl_s` (or the store's minimum) from now unless refreshed."""
        ...

    async def refresh(self, lease: Lease) -> None:
        """Restart the lease's TTL. Raises `LeaseExpiredError` if it already expired/was revoked;
        the caller must then consider every key bound to it gone."""
        ...

    async def revoke(self, lease: Lease) -> None:
        """End the lease now, deleting its keys. Revoking an unknown lease is a no-op."""
        ...


@runtime_checkable
class ConfigStore(Protocol):
    """Namespaced key-value store with watches and leases; see the module docstring."""

    @property
    def leases(self) -> LeaseManager:
        """The store's lease operations."""
        ...

    async def get(self, key: str) -> str | None:
        """The key's value, None when absent."""
        ...

    async def put(
        self, key: str, value: str, *, lease: Lease | None = None, if_absent: bool = False
    ) -> bool:
        """Write `value`, bound to `lease` if given. Returns False only when `if_absent` is set
        and the key exists (nothing written). Raises `LeaseExpiredError` for a dead lease."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the key; returns whether it existed. Idempotent."""
        ...

    async def get_prefix(self, prefix: str) -> dict[str, str]:
        """Every key starting with `prefix` ("" for all) with its value, sorted by key."""
        ...

    def watch_prefix(self, prefix: str) -> Watch:
        """Changes under `prefix` after the watch is entered: `async with store.watch_prefix(p)
        as events: async for event in events: ...`."""
        ...

    async def close(self) -> None:
        """Release connections and end open watches. Idempotent."""
        ...


def validate_key(key: str, *, allow_empty: bool = False) -> str:
    """Keys are relative to the namespace: no leading `/`, no whitespace, no NUL."""
    if (not key and not allow_empty) or key.startswith("/") or len(key) > 1024:
        raise InvalidNameError(f"invalid config key {key!r}: 1-1024 chars, no leading '/'")
    if any(ch.isspace() or ch == "\0" for ch in key):
        raise InvalidNameError(f"invalid config key {key!r}: whitespace or NUL")
    return key
