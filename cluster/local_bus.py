"""In-process `EventBus` for the one-machine mode (`berth up`).

Same contract as `RedisStreamBus` (groups, acks, redelivery after the visibility timeout, trimming,
broadcast), but it only connects publishers and consumers inside one process and forgets
everything on restart — acceptable because events are hints and every loop also polls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cluster.bus import (
    DEFAULT_MAXLEN,
    DEFAULT_SUBSCRIBER_QUEUE,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    BusMessage,
    MessageStream,
    SubscriberQueue,
    encode_event,
    validate_name,
)
from cluster.errors import BusClosedError, NotAckableError


class LocalBus:
    """`EventBus` kept in this process's memory. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        *,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
        maxlen: int = DEFAULT_MAXLEN,
        subscriber_queue: int = DEFAULT_SUBSCRIBER_QUEUE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if visibility_timeout_s <= 0 or maxlen < 1 or subscriber_queue < 1:
            raise ValueError("visibility_timeout_s, maxlen and subscriber_queue must be positive")
        self.visibility_timeout_s = visibility_timeout_s
        self.maxlen = maxlen
        self._subscriber_queue = subscriber_queue
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._closed = False

    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        self._check_open()
        validate_name("stream", stream)
        # A JSON round trip gives each consumer its own copy and the same types Redis would.
        payload = json.loads(encode_event(event))
        state = self._stream(stream)
        seq = state.append(payload, maxlen=self.maxlen)
        message_id = str(seq)
        for queue in state.subscribers:
            copy = json.loads(json.dumps(payload))
            queue.put(BusMessage(stream=stream, id=message_id, event=copy))
        state.notify()
        return message_id

    def consume(self, stream: str, *, group: str, consumer: str) -> MessageStream:
        self._check_open()
        validate_name("stream", stream)
        validate_name("group", group)
        validate_name("consumer", consumer)
        return _LocalConsumer(self, stream=stream, group=group, consumer=consumer)

    async def ack(self, message: BusMessage) -> None:
        self._check_open()
        if message.group is None:
            raise NotAckableError("broadcast messages are not acked")
        state = self._streams.get(message.stream)
        group = state.groups.get(message.group) if state else None
        if group is not None:
            group.pending.pop(int(message.id), None)

    def subscribe(self, stream: str) -> MessageStream:
        self._check_open()
        validate_name("stream", stream)
        return _LocalSubscription(self, stream=stream)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for state in self._streams.values():
            for queue in state.subscribers:
                queue.finish()
            state.notify()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosedError("the event bus is closed")

    def _stream(self, name: str) -> _Stream:
        state = self._streams.get(name)
        if state is None:
            state = self._streams[name] = _Stream()
        return state


@dataclass
class _Pending:
    consumer: str
    delivered_at: float


@dataclass
class _Group:
    cursor: int  # highest sequence number handed to this group
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass
class _Stream:
    entries: OrderedDict[int, dict[str, Any]] = field(default_factory=OrderedDict)
    last_seq: int = 0
    groups: dict[str, _Group] = field(default_factory=dict)
    subscribers: set[SubscriberQueue] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, payload: dict[str, Any], *, maxlen: int) -> int:
        self.last_seq += 1
        self.entries[self.last_seq] = payload
        while len(self.entries) > maxlen:
            trimmed, _ = self.entries.popitem(last=False)
            for group in self.groups.values():
                group.pending.pop(trimmed, None)
        return self.last_seq

    def notify(self) -> None:
        # Swap in a fresh event so waiters that look again after waking block until the next one.
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class _LocalConsumer(MessageStream):
    def __init__(self, bus: LocalBus, *, stream: str, group: str, consumer: str) -> None:
        super().__init__()
        self._bus = bus
        self._stream_name = stream
        self._group_name = group
        self._consumer = consumer

    async def _open(self) -> None:
        state = self._bus._stream(self._stream_name)
        if self._group_name not in state.groups:
            state.groups[self._group_name] = _Group(cursor=state.last_seq)

    async def _next(self) -> BusMessage | None:
        state = self._bus._stream(self._stream_name)
        while not (self._bus.closed or self.closed):
            group = state.groups[self._group_name]
            now = self._bus._clock()
            message = self._reclaim(state, group, now) or self._take_new(state, group, now)
            if message is not None:
                return message
            changed = state.changed
            timeout = self._until_next_expiry(group, now)
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                pass
        return None

    def _reclaim(self, state: _Stream, group: _Group, now: float) -> BusMessage | None:
        for seq, pending in group.pending.items():
            if now - pending.delivered_at >= self._bus.visibility_timeout_s:
                pending.consumer = self._consumer
                pending.delivered_at = now
                return self._message(seq, state.entries[seq], redelivered=True)
        return None

    def _take_new(self, state: _Stream, group: _Group, now: float) -> BusMessage | None:
        if group.cursor >= state.last_seq:
            return None
        # Skip what trimming removed: a slow group silently loses the oldest hints.
        first_kept = next(iter(state.entries), state.last_seq + 1)
        seq = max(group.cursor + 1, first_kept)
        group.cursor = seq
        group.pending[seq] = _Pending(consumer=self._consumer, delivered_at=now)
        return self._message(seq, state.entries[seq], redelivered=False)

    def _until_next_expiry(self, group: _Group, now: float) -> float | None:
        if not group.pending:
            return None
        oldest = min(p.delivered_at for p in group.pending.values())
        return max(0.0, oldest + self._bus.visibility_timeout_s - now)

    def _message(self, seq: int, payload: dict[str, Any], *, redelivered: bool) -> BusMessage:
        return BusMessage(
            stream=self._stream_name,
            id=str(seq),
            event=json.loads(json.dumps(payload)),
            group=self._group_name,
            consumer=self._consumer,
            redelivered=redelivered,
        )


class _LocalSubscription(MessageStream):
    def __init__(self, bus: LocalBus, *, stream: str) -> None:
        super().__init__()
        self._bus = bus
        self._stream_name = stream
        self._queue = SubscriberQueue(maxsize=bus._subscriber_queue)

    async def _open(self) -> None:
        self._bus._check_open()
        self._bus._stream(self._stream_name).subscribers.add(self._queue)

    async def _next(self) -> BusMessage | None:
        if self._bus.closed:
            return None
        return await self._queue.get()

    async def _close(self) -> None:
        state = self._bus._streams.get(self._stream_name)
        if state is not None:
            state.subscribers.discard(self._queue)
        self._queue.finish()
