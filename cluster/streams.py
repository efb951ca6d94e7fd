"""`AsyncStream`: the shape shared by bus consumers, subscriptions and config watches.

Each is an async iterator that is also an async context manager. Entering opens it (creates a
consumer group, fixes a subscription's starting point, registers a watch) so that everything that
happens afterwards is seen; iterating an unopened stream opens it first. Leaving, `aclose()` or
closing the owner (bus or store) ends the iteration.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class AsyncStream(abc.ABC, Generic[T]):
    def __init__(self) -> None:
        self._opened = False
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._ensure_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        await self._ensure_open()
        if self._closed:
            raise StopAsyncIteration
        item = await self._next()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """End the stream and release what it holds. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._opened:
            await self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def _ensure_open(self) -> None:
        if not self._opened and not self._closed:
            await self._open()
            self._opened = True

    async def _open(self) -> None:
        """Prepare server-side state; subclasses override when they have any."""

    @abc.abstractmethod
    async def _next(self) -> T | None:
        """Wait for the next item; None once the stream is finished."""

    async def _close(self) -> None:
        """Release resources; subclasses override when they hold any."""
