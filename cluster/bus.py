"""The event bus: named streams of small JSON events, consumed by groups or broadcast.

Events are **hints, never the source of truth**. A published event wakes a loop early (work was
queued) or pushes an update to browsers; PostgreSQL holds the facts. A lost, duplicated or late
event may cost latency, never correctness: every consumer also polls the database on its own
interval and must treat a message as "go and look", not as "this happened exactly once".

Delivery contract shared by every implementation (and checked by one conformance suite):

* `publish` appends an event to a stream and returns its id. Streams are trimmed to roughly the
  newest `maxlen` events; a consumer that falls further behind loses the oldest ones.
* `consume(stream, group=..., consumer=...)` shares the stream's events among the consumers of a
  group: each event goes to one consumer of each group. A group created for the first time sees
  the events published after its creation (opening the consumer creates it). A delivered message
  stays pending until `ack`; if it is not acked within the visibility timeout (the consumer
  crashed or hangs) it is delivered again, to any consumer of the group, with `redelivered=True`.
  Delivery is therefore at-least-once: handlers must be idempotent.
* `subscribe(stream)` is a broadcast: every subscription receives every event published after the
  subscription was opened, needs no ack, and never redelivers. A subscriber that cannot keep up
  loses its oldest queued events (browsers refetch state anyway).
* `close` stops every open consumer and subscription; further calls raise `BusClosedError`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cluster.errors import InvalidEventError, InvalidNameError
from cluster.streams import AsyncStream

# How long a delivered, unacked message stays invisible before another consumer may take it.
# Long enough for a normal handler (a DB round trip), short enough that a crashed replica's
# wake-ups are retried while they still matter.
DEFAULT_VISIBILITY_TIMEOUT_S = 30.0
# Events kept per stream. Hints are only useful while fresh; this bounds memory in Redis and in
# the in-process bus whatever the consumers do.
DEFAULT_MAXLEN = 10_000
# Events queued for one broadcast subscriber before the oldest are dropped.
DEFAULT_SUBSCRIBER_QUEUE = 1_000


@dataclass(frozen=True)
class BusMessage:
    """One delivered event.

    `group`/`consumer` are set for messages from `consume` (they must be acked) and None for
    broadcast messages.
    """

    stream: str
    id: str
    event: dict[str, Any]
    group: str | None = None
    consumer: str | None = None
    redelivered: bool = False


@runtime_checkable
class EventBus(Protocol):
    """Named streams of JSON events; see the module docstring for the delivery contract."""

    async def publish(self, stream: str, event: Mapping[str, Any]) -> str:
        """Append `event` to `stream`; return the new message id.

        Raises `InvalidEventError` when the event is not JSON-serialisable, `BusClosedError` after
        `close`. Not idempotent: publishing twice yields two messages.
        """
        ...

    def consume(self, stream: str, *, group: str, consumer: str) -> MessageStream:
        """Messages of `stream` for `consumer` in `group`, to be acked with `ack`.

        Use as `async with bus.consume(...) as messages: async for msg in messages: ...`; entering
        creates the group if needed. Iteration ends when the stream is closed or the bus is.
        """
        ...

    async def ack(self, message: BusMessage) -> None:
        """Mark a consumed message done so it is never redelivered. Acking twice is harmless.

        Raises `NotAckableError` for broadcast messages.
        """
        ...

    def subscribe(self, stream: str) -> MessageStream:
        """Broadcast: every event published to `stream` after the subscription is entered."""
        ...

    async def close(self) -> None:
        """Stop every consumer and subscription and release connections. Idempotent."""
        ...


class MessageStream(AsyncStream[BusMessage]):
    """Messages from `EventBus.consume` or `EventBus.subscribe` (see `cluster.streams`)."""


@dataclass(eq=False)  # identity semantics: queues live in sets
class SubscriberQueue:
    """Bounded fan-out queue of one broadcast subscriber; drops its oldest message when full."""

    maxsize: int = DEFAULT_SUBSCRIBER_QUEUE
    dropped: int = 0
    _queue: asyncio.Queue[BusMessage | None] = field(default_factory=asyncio.Queue)

    def put(self, message: BusMessage) -> None:
        if self._queue.qsize() >= self.maxsize:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    def finish(self) -> None:
        """Wake the reader with the end-of-stream marker."""
        self._queue.put_nowait(None)

    async def get(self) -> BusMessage | None:
        return await self._queue.get()


def encode_event(event: Mapping[str, Any]) -> str:
    """Serialise an event, rejecting anything that is not a JSON object with a clear error."""
    if not isinstance(event, Mapping):
        raise InvalidEventError(f"an event must be a mapping, got {type(event).__name__}")
    try:
        return json.dumps(dict(event), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"event is not JSON-serialisable: {exc}") from exc


def decode_event(data: str | bytes) -> dict[str, Any]:
    decoded = json.loads(data)
    if not isinstance(decoded, dict):
        # Only our own encoder writes these streams, so this means foreign data under our prefix.
        return {"_raw": decoded}
    return decoded


def validate_name(kind: str, name: str) -> str:
    """Stream, group and consumer names become Redis keys/arguments: keep them simple."""
    if not name or any(ch.isspace() for ch in name) or len(name) > 200:
        raise InvalidNameError(f"invalid {kind} name {name!r}: 1-200 chars, no whitespace")
    return name
