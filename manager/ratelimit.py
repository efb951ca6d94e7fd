"""Rate limits on logins (per client IP + username) and on API token use (per access key).

A token bucket per key: `capacity` requests at once, refilled at `per_second`. In-process buckets
serve one manager; with `redis_url = redis://…` the buckets live in Redis (one atomic Lua script
per hit), so every manager replica counts against the same budget. A Redis outage fails open —
the API keeps serving, in-process buckets take over until Redis answers again — because refusing
every login while Redis restarts would be worse than a short window of per-replica limits.

Wiring (composition root + middleware):

    app.cleanup_ctx.append(rate_limits_ctx)                        # manager/app.py
    await request.app[RATE_LIMITS_KEY].check_login(ip, username)   # login handler
    await request.app[RATE_LIMITS_KEY].check_token(access_key)     # before the token lookup
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from aiohttp import web

from manager.errors import RateLimited
from manager.state import STATE_KEY

log = logging.getLogger("berth.manager.ratelimit")

REDIS_TIMEOUT_S = 0.5  # a slow Redis must not slow every request down
REDIS_RETRY_AFTER_S = 5.0  # after a Redis error, use local buckets this long


@dataclass(frozen=True)
class Policy:
    """`capacity` requests in a burst, then `per_second` sustained."""

    capacity: float
    per_second: float


# Ten attempts, then one every six seconds: slows password guessing to ~600/hour/user/IP.
LOGIN_POLICY = Policy(capacity=10, per_second=1 / 6)
# Generous for scripts, benchmarks and the web UI; stops runaway loops and stolen-key floods.
TOKEN_POLICY = Policy(capacity=1000, per_second=200)


class Bucket(Protocol):
    async def take(self, key: str) -> float:
        """Take one token for `key`; 0.0 when allowed, else seconds until one is available."""
        ...

    async def close(self) -> None: ...


class MemoryBuckets:
    """In-process buckets; the least recently used keys are dropped beyond `max_keys`."""

    def __init__(self, policy: Policy, *, max_keys: int = 100_000) -> None:
        self.policy = policy
        self.max_keys = max_keys
        self._state: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, key: str) -> float:
        return self.take_now(key, now=time.monotonic())

    def take_now(self, key: str, *, now: float) -> float:
        tokens, last = self._state.pop(key, (self.policy.capacity, now))
        tokens = min(self.policy.capacity, tokens + (now - last) * self.policy.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.policy.per_second
        self._state[key] = (tokens, now)
        while len(self._state) > self.max_keys:
            self._state.popitem(last=False)
        return wait

    async def close(self) -> None:
        self._state.clear()


# KEYS[1]: bucket hash; ARGV: capacity, per_second. Uses the server's clock, so replicas with
# skewed clocks agree. Returns the wait in milliseconds (0: allowed).
_TAKE_SCRIPT = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return math.ceil(wait * 1000)
"""


class RedisBuckets:
    """Buckets shared by every manager through Redis; local buckets while Redis is down."""

    def __init__(self, client: aioredis.Redis, policy: Policy, *, prefix: str) -> None:
        self.client = client
        self.policy = policy
        self.prefix = prefix
        self.fallback = MemoryBuckets(policy)
        self._script = client.register_script(_TAKE_SCRIPT)
        self._down_until = 0.0

    async def take(self, key: str) -> float:
        if time.monotonic() < self._down_until:
            return await self.fallback.take(key)
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                wait_ms = await self._script(
                    keys=[f"{self.prefix}:{key}"],
                    args=[self.policy.capacity, self.policy.per_second],
                )
        except (aioredis.RedisError, OSError, TimeoutError) as exc:
            log.warning(
                "rate limit store unavailable; limiting locally", extra={"error": repr(exc)}
            )
            self._down_until = time.monotonic() + REDIS_RETRY_AFTER_S
            return await self.fallback.take(key)
        return int(wait_ms) / 1000

    async def close(self) -> None:
        await self.fallback.close()


def _hashed(*parts: str) -> str:
    """Keys never hold a username or access key in clear (Redis is not a secret store)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class RateLimits:
    """The manager's two limiters; raise `RateLimited` (HTTP 429) when a bucket is empty."""

    def __init__(self, *, login: Bucket, token: Bucket, client: aioredis.Redis | None = None):
        self.login = login
        self.token = token
        self._client = client

    @classmethod
    def create(
        cls,
        redis_url: str,
        *,
        prefix: str = "berth:ratelimit",
        login: Policy = LOGIN_POLICY,
        token: Policy = TOKEN_POLICY,
    ) -> RateLimits:
        """Redis-backed for `redis://`/`rediss://`/`unix://` URLs, in-process otherwise."""
        parts = urlsplit(redis_url)
        if parts.scheme in ("redis", "rediss", "unix"):
            query = parse_qs(parts.query)
            if "prefix" in query:  # the bus's namespace (tests, several clusters on one Redis)
                prefix = f"{query.pop('prefix')[0]}:ratelimit"
            url = urlunsplit(parts._replace(query=urlencode(query, doseq=True)))
            # socket_timeout=None: deadlines come from asyncio.timeout (see docs/cluster.md).
            client = aioredis.Redis.from_url(url, socket_timeout=None)
            return cls(
                login=RedisBuckets(client, login, prefix=f"{prefix}:login"),
                token=RedisBuckets(client, token, prefix=f"{prefix}:token"),
                client=client,
            )
        return cls(login=MemoryBuckets(login), token=MemoryBuckets(token))

    async def check_login(self, client_ip: str, username: str) -> None:
        wait = await self.login.take(_hashed(client_ip, username.lower()))
        if wait > 0:
            raise RateLimited(
                f"too many login attempts; retry in {wait:.0f} s",
                details={"retry_after_s": round(wait, 1)},
            )

    async def check_token(self, access_key: str) -> None:
        wait = await self.token.take(_hashed(access_key))
        if wait > 0:
            raise RateLimited(
                f"too many requests with this API token; retry in {wait:.1f} s",
                details={"retry_after_s": round(wait, 1)},
            )

    async def close(self) -> None:
        await self.login.close()
        await self.token.close()
        if self._client is not None:
            await self._client.aclose()


RATE_LIMITS_KEY = web.AppKey("berth_rate_limits", RateLimits)


async def rate_limits_ctx(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: build the limiters from the manager's redis_url; close them at exit."""
    limits = RateLimits.create(app[STATE_KEY].config.redis_url)
    app[RATE_LIMITS_KEY] = limits
    yield
    await limits.close()


__all__ = [
    "LOGIN_POLICY",
    "RATE_LIMITS_KEY",
    "TOKEN_POLICY",
    "MemoryBuckets",
    "Policy",
    "RateLimits",
    "RedisBuckets",
    "rate_limits_ctx",
]
