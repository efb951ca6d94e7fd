"""Rate limits: token buckets in process and in the real Redis (shared by managers), failing
open to local buckets when Redis is unreachable, and the 429 the API answers."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from manager.errors import RateLimited
from manager.ratelimit import MemoryBuckets, Policy, RateLimits, RedisBuckets


def redis_url() -> str:
    url = os.environ.get("BERTH_TEST_REDIS_URL")
    if not url:
        raise RuntimeError("BERTH_TEST_REDIS_URL is not set: run through ./scripts/test")
    return url


def test_memory_bucket_allows_a_burst_then_refills() -> None:
    buckets = MemoryBuckets(Policy(capacity=3, per_second=2))
    assert [buckets.take_now("k", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take_now("k", now=0.0) == pytest.approx(0.5)
    assert buckets.take_now("other", now=0.0) == 0.0, "keys are independent"
    assert buckets.take_now("k", now=0.5) == 0.0, "one token back after 1/rate seconds"
    assert buckets.take_now("k", now=0.5) > 0


def test_memory_buckets_stay_bounded() -> None:
    buckets = MemoryBuckets(Policy(capacity=1, per_second=1), max_keys=10)
    for i in range(100):
        buckets.take_now(f"k{i}", now=0.0)
    assert len(buckets._state) == 10


async def test_redis_buckets_are_shared_between_managers() -> None:
    prefix = f"rl-test-{uuid.uuid4().hex[:8]}"
    policy = Policy(capacity=3, per_second=0.01)
    clients = [aioredis.Redis.from_url(redis_url(), socket_timeout=None) for _ in range(2)]
    try:
        one, two = (RedisBuckets(c, policy, prefix=prefix) for c in clients)
        waits = [await one.take("user"), await two.take("user"), await one.take("user")]
        assert waits == [0.0, 0.0, 0.0]
        assert await two.take("user") > 0, "the second manager sees the first one's hits"
        assert await one.take("someone-else") == 0.0
        ttl = await clients[0].pttl(f"{prefix}:user")
        assert 0 < ttl <= (3 / 0.01 + 1) * 1000, "idle buckets expire"
    finally:
        await clients[0].delete(f"{prefix}:user", f"{prefix}:someone-else")
        for client in clients:
            await client.aclose()


async def test_unreachable_redis_fails_open_to_local_buckets() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=None)
    buckets = RedisBuckets(client, Policy(capacity=2, per_second=0.01), prefix="down")
    try:
        started = time.monotonic()
        assert await buckets.take("k") == 0.0
        assert await buckets.take("k") == 0.0
        assert await buckets.take("k") > 0, "still limited, by the local bucket"
        assert time.monotonic() - started < 2, "no request waits on a dead Redis"
    finally:
        await client.aclose()


async def test_limits_raise_rate_limited_with_a_retry_hint() -> None:
    limits = RateLimits.create("local://")
    try:
        for _ in range(10):
            await limits.check_login("10.0.0.1", "alice")
        with pytest.raises(RateLimited) as caught:
            await limits.check_login("10.0.0.1", "ALICE")  # usernames compare case-blind
        assert caught.value.details["retry_after_s"] > 0
        await limits.check_login("10.0.0.2", "alice")  # another address has its own bucket
    finally:
        await limits.close()


async def test_the_api_answers_429_after_too_many_logins(api: Any) -> None:
    username = f"nobody-{uuid.uuid4().hex[:6]}"
    statuses = []
    for _ in range(11):
        resp = await api.post(
            "/api/v1/auth/login", json={"username": username, "password": "not-it"}
        )
        statuses.append(resp.status)
    assert statuses == [401] * 10 + [429]
    body = await resp.json()
    assert body["code"] == "rate_limited" and body["request_id"]
    assert "not-it" not in str(body)
