"""`EventBus` on Redis Streams: consumer groups with XACK, XAUTOCLAIM redelivery, MAXLEN trimming.

Key layout: one stream per bus stream at `<prefix>:stream:<name>`; every entry holds a single
field `data` with the event as JSON. Consumer groups are Redis consumer groups on that key, so
the group's position and its pending entries survive a restart of every Berth process.

Broadcast subscriptions share one XREAD loop per stream per process (a manager serving many
browsers holds one blocked connection per stream, not one per browser) and fan out in memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cluster.bus import (
    DEFAULT_MAXLEN,
    DEFAULT_SUBSCRIBER_QUEUE,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    BusMessage,
    MessageStream,
    SubscriberQueue,
    decode_event,
    encode_event,
    validate_name,
)
from cluster.errors import BusClosedError, NotAckableError

log = logging.getLogger(__name__)

# Upper bound of one blocking read: how quickly an idle consumer notices `close` and checks for
# messages to reclaim.
DEFAULT_BLOCK_S = 1.0
# Messages taken per read. A taken message is pending for this consumer, so a batch would hoard
# work that an idle peer in the group could be doing (and could time out in our buffer).
READ_BATCH = 1
# Pause after a lost connection before a consumer or fan-out loop retries.
RECONNECT_DELAY_S = 0.5
# Deadline of one Redis command (plus the block time for blocking reads). We enforce it with
# asyncio.timeout instead of redis-py's socket_timeout: on Python 3.11 redis-py wraps socket
# writes in asyncio.wait_for, which can swallow a task's cancellation, leaving a cancelled
# consumer task running forever.
DEFAULT_COMMAND_TIMEOUT_S = 10.0

_DISCONNECTS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class RedisStreamBus:
    """`EventBus` over Redis Streams; see `cluster.bus` for the delivery contract."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        prefix: str = "berth",
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        maxlen: int = DEFAULT_MAXLEN,
        subscriber_queue: int = DEFAULT_SUBSCRIBER_QUEUE,
        block_s: float = DEFAULT_BLOCK_S,
        command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        owns_client: bool = True,
    ) -> None:
        if visibility_timeout_s <= 0 or maxlen < 1 or subscriber_queue < 1 or block_s <= 0:
            raise ValueError("timeouts, maxlen and subscriber_queue must be positive")
        self._redis = redis
        self.prefix = prefix
        self.visibility_timeout_s = visibility_timeout_s
        self.maxlen = maxlen
        self._subscriber_queue = subscriber_queue
        # Reclaim at least twice per visibility timeout, so redelivery lags it by at most half.
        self._block_s = min(block_s, visibility_timeout_s / 2)
        self.command_timeout_s = command_timeout_s
        self._owns_client = owns_client
        self._fanouts: dict[str, _Fanout] = {}
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStreamBus:
        """Build a bus with its own connection pool; connects lazily on first use."""
        # socket_timeout=None: see DEFAULT_COMMAND_TIMEOUT_S for why deadlines are ours.
        client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=None)
        return cls(client, owns_client=True, **kwargs)

    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        self._check_open()
        payload = encode_event(event)
        key = self._key(validate_name("stream", stream))
        async with self.deadline():
            message_id = await self._redis.xadd(
                key,
                {"data": payload},
                maxlen=self.maxlen,
                approximate=False,  # exact, so `maxlen` means the same here and in LocalBus
            )
        return _text(message_id)

    def consume(self, stream: str, *, group: str, consumer: str) -> MessageStream:
        self._check_open()
        validate_name("stream", stream)
        validate_name("group", group)
        validate_name("consumer", consumer)
        return _RedisConsumer(self, stream=stream, group=group, consumer=consumer)

    async def ack(self, message: BusMessage) -> None:
        self._check_open()
        if message.group is None:
            raise NotAckableError("broadcast messages are not acked")
        async with self.deadline():
            await self._redis.xack(self._key(message.stream), message.group, message.id)

    def subscribe(self, stream: str) -> MessageStream:
        self._check_open()
        validate_name("stream", stream)
        return _RedisSubscription(self, stream=stream)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        fanouts, self._fanouts = list(self._fanouts.values()), {}
        for fanout in fanouts:
            await fanout.stop()
        if self._owns_client:
            await self._redis.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    def deadline(self, *, blocking: bool = False) -> asyncio.Timeout:
        """Deadline for one command; blocking reads get their block time on top."""
        return asyncio.timeout(self.command_timeout_s + (self._block_s if blocking else 0.0))

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("the event bus is closed")

    def _key(self, stream: str) -> str:
        return f"{self.prefix}:stream:{stream}"


class _RedisConsumer(MessageStream):
    def __init__(self, bus: RedisStreamBus, *, stream: str, group: str, consumer: str) -> None:
        super().__init__()
        self._bus = bus
        self._redis = bus._redis
        self._stream_name = stream
        self._key = bus._key(stream)
        self._group = group
        self._consumer = consumer
        self._buffer: deque[BusMessage] = deque()
        self._last_claim_at = -math.inf
        self._claim_cursor = "0-0"

    async def _open(self) -> None:
        bus = self._bus
        bus._check_open()
        try:
            # "$": a new group starts with the events published from now on; an existing group
            # keeps its position and pending entries.
            async with bus.deadline():
                await self._redis.xgroup_create(self._key, self._group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _next(self) -> BusMessage | None:
        while not (self._bus.closed or self.closed):
            if self._buffer:
                return self._buffer.popleft()
            try:
                await self._fill()
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream key was deleted (FLUSHDB, manual cleanup): recreate and carry on.
                await self._open()
            except _DISCONNECTS as exc:
                if self._bus.closed or self.closed:
                    return None
                # Hints may be late, never fatal: wait for Redis to come back.
                log.warning("bus consumer %s/%s lost Redis: %r", self._key, self._group, exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
        return None

    async def _fill(self) -> None:
        now = time.monotonic()
        if now - self._last_claim_at >= self._bus._block_s:
            claimed = await self._reclaim()
            # Claimed something or stopped mid-scan: more may be waiting, look again at once.
            more = claimed >= READ_BATCH or self._claim_cursor != "0-0"
            self._last_claim_at = -math.inf if more else now
            if claimed:
                return
        async with self._bus.deadline(blocking=True):
            response: Any = await self._redis.xreadgroup(
                self._group,
                self._consumer,
                {self._key: ">"},
                count=READ_BATCH,
                block=max(1, int(self._bus._block_s * 1000)),
            )
        for _key, entries in response or []:
            for entry_id, fields in entries:
                self._buffer.append(self._message(entry_id, fields, redelivered=False))

    async def _reclaim(self) -> int:
        async with self._bus.deadline():
            response: Any = await self._redis.xautoclaim(
                self._key,
                self._group,
                self._consumer,
                min_idle_time=int(self._bus.visibility_timeout_s * 1000),
                start_id=self._claim_cursor,
                count=READ_BATCH,
            )
        # XAUTOCLAIM scans a bounded slice of the pending list per call; resume where it stopped
        # so idle entries behind many in-flight ones are found too ("0-0" means wrapped around).
        self._claim_cursor = _text(response[0]) if response else "0-0"
        entries = response[1] if len(response) > 1 else []
        for entry_id, fields in entries:
            if fields:  # entries trimmed away come back empty: nothing left to deliver
                self._buffer.append(self._message(entry_id, fields, redelivered=True))
        return len(entries)

    def _message(self, entry_id: Any, fields: Any, *, redelivered: bool) -> BusMessage:
        return BusMessage(
            stream=self._stream_name,
            id=_text(entry_id),
            event=decode_event(_field(fields, "data")),
            group=self._group,
            consumer=self._consumer,
            redelivered=redelivered,
        )


class _RedisSubscription(MessageStream):
    def __init__(self, bus: RedisStreamBus, *, stream: str) -> None:
        super().__init__()
        self._bus = bus
        self._stream_name = stream
        self._queue = SubscriberQueue(maxsize=bus._subscriber_queue)
        self._after: tuple[int, int] = (0, 0)

    async def _open(self) -> None:
        bus = self._bus
        bus._check_open()
        fanout = bus._fanouts.get(self._stream_name)
        if fanout is None:
            fanout = bus._fanouts[self._stream_name] = _Fanout(bus, self._stream_name)
        # Register before reading the stream's tip: every entry after the tip is then dispatched
        # to this queue, and anything older that arrives is filtered out by `_after`.
        fanout.queues.add(self._queue)
        await fanout.start()
        async with bus.deadline():
            tip = await _tip(bus._redis, bus._key(self._stream_name))
        self._after = _id_key(tip)

    async def _next(self) -> BusMessage | None:
        while True:
            message = await self._queue.get()
            if message is None:
                return None
            if _id_key(message.id) > self._after:
                return message

    async def _close(self) -> None:
        self._queue.finish()
        fanout = self._bus._fanouts.get(self._stream_name)
        if fanout is None:
            return
        fanout.queues.discard(self._queue)
        if not fanout.queues:
            del self._bus._fanouts[self._stream_name]
            await fanout.stop()


class _Fanout:
    """One XREAD loop for a stream, dispatching every entry to this process's subscribers."""

    def __init__(self, bus: RedisStreamBus, stream: str) -> None:
        self._bus = bus
        self._stream = stream
        self._key = bus._key(stream)
        self.queues: set[SubscriberQueue] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Start the loop once; return when it has fixed its starting point."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"bus-fanout:{self._stream}")
        task = self._task
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
        if task.done():
            task.result()  # re-raise why the loop died (e.g. WRONGTYPE on the key)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        for queue in self.queues:
            queue.finish()

    async def _run(self) -> None:
        redis = self._bus._redis
        cursor: str | None = None
        while True:
            try:
                if cursor is None:
                    async with self._bus.deadline():
                        cursor = await _tip(redis, self._key)
                    self._ready.set()
                async with self._bus.deadline(blocking=True):
                    response: Any = await redis.xread(
                        {self._key: cursor},
                        count=100,
                        block=max(1, int(self._bus._block_s * 1000)),
                    )
            except _DISCONNECTS as exc:
                log.warning("bus fan-out for %s lost Redis: %r; retrying", self._stream, exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
                continue
            for _key, entries in response or []:
                for entry_id, fields in entries:
                    cursor = _text(entry_id)
                    data = _field(fields, "data")
                    for queue in list(self.queues):
                        queue.put(BusMessage(self._stream, cursor, decode_event(data)))


async def _tip(redis: aioredis.Redis, key: str) -> str:
    """Id of the newest entry of a stream, "0-0" when it is empty or absent."""
    newest = await redis.xrevrange(key, "+", "-", count=1)
    return _text(newest[0][0]) if newest else "0-0"


def _id_key(message_id: str) -> tuple[int, int]:
    millis, _, seq = message_id.partition("-")
    return int(millis), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: Mapping[Any, Any], name: str) -> str:
    value = fields.get(name, fields.get(name.encode()))
    return "null" if value is None else _text(value)
