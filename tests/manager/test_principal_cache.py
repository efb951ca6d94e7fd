"""The bearer-token cache: reused only while fresh and while the token itself is valid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from manager.auth.cache import PrincipalCache
from manager.auth.principal import Principal
from manager.db.models import UserRole


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _principal() -> Principal:
    return Principal(user_id=uuid.uuid4(), domain_id=uuid.uuid4(), role=UserRole.USER)


class TestPrincipalCache:
    def test_an_entry_is_reused_until_its_time_to_live_passes(self) -> None:
        clock, now = Clock(), datetime.now(UTC)
        cache = PrincipalCache(2.0, monotonic=clock)
        who = _principal()
        cache.put(b"k", who, token_expires_at=None)
        clock.t += 1.9
        assert cache.get(b"k", now=now) is who
        clock.t += 0.2
        assert cache.get(b"k", now=now) is None

    def test_a_token_that_expires_is_not_served_from_the_cache(self) -> None:
        now = datetime.now(UTC)
        cache = PrincipalCache(60.0, monotonic=Clock())
        cache.put(b"k", _principal(), token_expires_at=now + timedelta(seconds=1))
        assert cache.get(b"k", now=now) is not None
        assert cache.get(b"k", now=now + timedelta(seconds=1)) is None

    def test_clear_forgets_everything_and_zero_ttl_disables_it(self) -> None:
        now = datetime.now(UTC)
        cache = PrincipalCache(5.0, monotonic=Clock())
        cache.put(b"a", _principal(), token_expires_at=None)
        cache.clear()
        assert cache.get(b"a", now=now) is None
        off = PrincipalCache(0, monotonic=Clock())
        off.put(b"a", _principal(), token_expires_at=None)
        assert off.get(b"a", now=now) is None
