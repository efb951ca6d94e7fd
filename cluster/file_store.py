"""`ConfigStore` in one JSON file, for the one-machine mode (`berth up`).

Several processes on one host may share the file (the manager, a local agent, the CLI):

* every operation holds an exclusive `fcntl.flock` on `<file>.lock` while it reads, changes and
  writes the file, so compare-and-create is atomic across processes;
* writes go to a temporary file in the same directory, are fsynced and renamed over the file
  (then the directory is fsynced), so a crash leaves either the old or the new file, never a torn
  one; a file that is not valid JSON is reported, never overwritten;
* leases store an absolute expiry in wall-clock seconds, so any process can tell that a lease
  ended; expired leases and their keys are dropped by the next operation and are invisible
  before that;
* watches poll the file (and wake at once on this instance's own writes) and report the net
  change since the previous poll.

File layout (version 1):
`{"version": 1, "revision": N, "next_lease_id": N,
  "keys": {"<key>": {"value": str, "lease": id|null, "mod": revision}},
  "leases": {"<id>": {"ttl_s": float, "expires_at": unix seconds}}}`
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cluster.config_store import Lease, Watch, WatchEvent, validate_key
from cluster.errors import ConfigStoreError, LeaseExpiredError

T = TypeVar("T")

FILE_VERSION = 1
# How often watches look at the file for changes made by other processes; changes made through
# the same store instance wake watches immediately.
DEFAULT_POLL_INTERVAL_S = 0.5


class FileConfigStore:
    """`ConfigStore` over a JSON file; see the module docstring and `cluster.config_store`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        prefix: str = "",
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be positive")
        self.path = Path(path)
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._leases = _FileLeases(self)
        self._changed = asyncio.Event()
        self._watches: set[_FileWatch] = set()

    @property
    def leases(self) -> _FileLeases:
        return self._leases

    async def get(self, key: str) -> str | None:
        full = self._full(key)
        return await self._run(lambda state: _visible_value(state, full))

    async def put(
        self, key: str, value: str, *, lease: Lease | None = None, if_absent: bool = False
    ) -> bool:
        full = self._full(key)

        def change(state: _State) -> bool:
            if if_absent and full in state.keys:
                return False
            if lease is not None and str(lease.id) not in state.leases:
                raise LeaseExpiredError(f"lease {lease.id} expired or was revoked")
            state.revision += 1
            state.keys[full] = {
                "value": value,
                "lease": lease.id if lease is not None else None,
                "mod": state.revision,
            }
            state.dirty = True
            return True

        return await self._run(change)

    async def delete(self, key: str) -> bool:
        full = self._full(key)

        def change(state: _State) -> bool:
            if state.keys.pop(full, None) is None:
                return False
            state.revision += 1
            state.dirty = True
            return True

        return await self._run(change)

    async def get_prefix(self, prefix: str) -> dict[str, str]:
        full = self._full(prefix, allow_empty=True)

        def read(state: _State) -> dict[str, str]:
            return {
                k[len(self.prefix) :]: entry["value"]
                for k, entry in sorted(state.keys.items())
                if k.startswith(full)
            }

        return await self._run(read)

    def watch_prefix(self, prefix: str) -> Watch:
        return _FileWatch(self, self._full(prefix, allow_empty=True))

    async def close(self) -> None:
        for watch in list(self._watches):
            await watch.aclose()
        self._notify()

    def _full(self, key: str, *, allow_empty: bool = False) -> str:
        return self.prefix + validate_key(key, allow_empty=allow_empty)

    async def _run(self, operation: Callable[[_State], T]) -> T:
        """Run one locked read-(modify-write) in a thread; flock and fsync block."""
        state_holder: list[_State] = []

        def locked() -> T:
            with self._locked():
                state = _State.from_json(self._read_raw(), now=self._clock())
                state_holder.append(state)
                result = operation(state)
                if state.dirty:
                    self._write_raw(state.to_json())
                return result

        try:
            result = await asyncio.to_thread(locked)
        except OSError as exc:
            raise ConfigStoreError(f"config store file {self.path}: {exc}") from exc
        if state_holder and state_holder[0].dirty:
            self._notify()
        return result

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def _read_raw(self) -> dict[str, Any]:
        """The parsed file, {} when it does not exist yet. Never cached: a rename can reuse an
        inode within one mtime tick, so a stat-based cache could miss another process's write."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise ConfigStoreError(f"config store file {self.path} is corrupt: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("version") != FILE_VERSION:
            raise ConfigStoreError(f"config store file {self.path} has an unknown format")
        return parsed

    def _write_raw(self, data: dict[str, Any]) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, separators=(",", ":"), sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _snapshot(self, full_prefix: str) -> dict[str, tuple[str, int]]:
        """Visible keys under a prefix with (value, mod revision), read without the lock:
        renames are atomic, so an unlocked reader sees a whole file."""
        state = _State.from_json(self._read_raw(), now=self._clock())
        return {
            k: (entry["value"], int(entry["mod"]))
            for k, entry in state.keys.items()
            if k.startswith(full_prefix)
        }


class _FileLeases:
    def __init__(self, store: FileConfigStore) -> None:
        self._store = store

    async def grant(self, ttl_s: float) -> Lease:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        now = self._store._clock

        def change(state: _State) -> Lease:
            lease_id = state.next_lease_id
            state.next_lease_id += 1
            state.leases[str(lease_id)] = {"ttl_s": ttl_s, "expires_at": now() + ttl_s}
            state.dirty = True
            return Lease(id=lease_id, ttl_s=float(ttl_s))

        return await self._store._run(change)

    async def refresh(self, lease: Lease) -> None:
        now = self._store._clock

        def change(state: _State) -> None:
            entry = state.leases.get(str(lease.id))
            if entry is None:
                raise LeaseExpiredError(f"lease {lease.id} expired or was revoked")
            entry["expires_at"] = now() + float(entry["ttl_s"])
            state.dirty = True

        await self._store._run(change)

    async def revoke(self, lease: Lease) -> None:
        def change(state: _State) -> None:
            if state.leases.pop(str(lease.id), None) is None:
                return
            state.drop_keys_of({lease.id})
            state.dirty = True

        await self._store._run(change)


@dataclass
class _State:
    revision: int
    next_lease_id: int
    keys: dict[str, dict[str, Any]]
    leases: dict[str, dict[str, Any]]
    dirty: bool = False

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, now: float) -> _State:
        state = cls(
            revision=int(raw.get("revision", 0)),
            next_lease_id=int(raw.get("next_lease_id", 1)),
            keys=dict(raw.get("keys", {})),
            leases=dict(raw.get("leases", {})),
        )
        state.expire(now)
        return state

    def expire(self, now: float) -> None:
        """Drop leases past their expiry and every key bound to them (or to a missing lease)."""
        dead = {lid for lid, entry in self.leases.items() if float(entry["expires_at"]) <= now}
        for lid in dead:
            del self.leases[lid]
        live = {int(lid) for lid in self.leases}
        orphaned = {int(e["lease"]) for e in self.keys.values() if e["lease"] is not None} - live
        if dead or orphaned:
            self.drop_keys_of(orphaned)
            self.dirty = True

    def drop_keys_of(self, lease_ids: set[int]) -> None:
        doomed = [
            k for k, e in self.keys.items() if e["lease"] is not None and e["lease"] in lease_ids
        ]
        for key in doomed:
            del self.keys[key]
        if doomed:
            self.revision += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FILE_VERSION,
            "revision": self.revision,
            "next_lease_id": self.next_lease_id,
            "keys": self.keys,
            "leases": self.leases,
        }


def _visible_value(state: _State, full_key: str) -> str | None:
    entry = state.keys.get(full_key)
    return None if entry is None else str(entry["value"])


class _FileWatch(Watch):
    def __init__(self, store: FileConfigStore, full_prefix: str) -> None:
        super().__init__()
        self._store = store
        self._full_prefix = full_prefix
        self._seen: dict[str, tuple[str, int]] = {}
        self._queue: list[WatchEvent] = []

    async def _open(self) -> None:
        self._seen = await asyncio.to_thread(self._store._snapshot, self._full_prefix)
        self._store._watches.add(self)

    async def _next(self) -> WatchEvent | None:
        while not self.closed:
            if self._queue:
                return self._queue.pop(0)
            changed = self._store._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self._store.poll_interval_s)
            if self.closed:
                break
            current = await asyncio.to_thread(self._store._snapshot, self._full_prefix)
            self._queue.extend(self._diff(current))
            self._seen = current
        return None

    async def _close(self) -> None:
        self._store._watches.discard(self)
        self._store._notify()  # wake a reader blocked in _next so it sees `closed`

    def _diff(self, current: dict[str, tuple[str, int]]) -> list[WatchEvent]:
        strip = len(self._store.prefix)
        events = [
            WatchEvent(kind="delete", key=k[strip:], value=None)
            for k in sorted(self._seen.keys() - current.keys())
        ]
        changed = [(mod, k, v) for k, (v, mod) in current.items() if self._seen.get(k) != (v, mod)]
        events.extend(
            WatchEvent(kind="put", key=k[strip:], value=v) for _, k, v in sorted(changed)
        )
        return events
