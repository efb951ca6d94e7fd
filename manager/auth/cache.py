"""A short-lived, in-process cache of bearer token → Principal.

Resolving a token costs three queries (token, user, memberships) on every request; caching the
answer for `ttl_s` (default 2 s) removes most of them under load. Changes made through this
process (revoking a token, changing a user or a membership) clear the cache at once; on other
manager replicas they take effect within `ttl_s`. Only successes are cached, so a wrong token is
never remembered, and a cached token still expires at its own `expires_at`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from manager.auth.principal import Principal

MAX_ENTRIES = 10_000  # bounded memory: the cache is simply emptied when it fills up


@dataclass(frozen=True)
class _Entry:
    principal: Principal
    fresh_until: float
    token_expires_at: datetime | None


class PrincipalCache:
    def __init__(self, ttl_s: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._entries: dict[bytes, _Entry] = {}

    def get(self, key: bytes, *, now: datetime) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.fresh_until < self._monotonic() or (
            entry.token_expires_at is not None and entry.token_expires_at <= now
        ):
            self._entries.pop(key, None)
            return None
        return entry.principal

    def put(self, key: bytes, principal: Principal, *, token_expires_at: datetime | None) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = _Entry(principal, self._monotonic() + self.ttl_s, token_expires_at)

    def clear(self) -> None:
        self._entries.clear()
