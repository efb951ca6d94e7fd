"""Berth: a blocking facade over AsyncBerth for scripts and notebooks.

It runs one AsyncBerth on a private event loop in a daemon thread, so it also works inside a
program that already runs an event loop (a Jupyter kernel). Coroutine methods block until done;
async iterators (lists, events, logs) become plain iterators."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from client.config import ClientConfig
from client.sdk.client import AsyncBerth, check_logged_in

T = TypeVar("T")


class _Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="berth-sdk", daemon=True)
        self.thread.start()

    def run(self, awaitable: Awaitable[T]) -> T:
        async def _wrap() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(_wrap(), self.loop).result()

    def iterate(self, source: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self.run(source.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            closer = getattr(source, "aclose", None)
            if closer is not None:
                self.run(closer())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class _Blocking:
    """Wraps an object of the async client: calls run on the loop thread."""

    def __init__(self, target: Any, loop: _Loop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if callable(value):
            return self._wrap(value)
        if isinstance(value, int | float | str | bool | type(None)):
            return value
        return _Blocking(value, self._loop)

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if inspect.iscoroutine(result):
                return self._loop.run(result)
            if hasattr(result, "__anext__"):
                return self._loop.iterate(result)
            return result

        call.__doc__ = func.__doc__
        call.__name__ = getattr(func, "__name__", "call")
        return call


class Berth(_Blocking):
    """Blocking client: `with Berth.from_config() as berth: berth.sessions.get("job-1")`.

    Same resources and methods as AsyncBerth, without `await`."""

    def __init__(self, endpoint: str, token: str | None, **kwargs: Any) -> None:
        loop = _Loop()
        client = loop.run(_build(endpoint, token, kwargs))
        super().__init__(client, loop)

    @classmethod
    def from_config(cls, config: ClientConfig | None = None, **kwargs: Any) -> Berth:
        config = config or ClientConfig.load()
        check_logged_in(config)
        return cls(config.endpoint, config.token, **kwargs)

    def close(self) -> None:
        try:
            self._loop.run(self._target.aclose())
        finally:
            self._loop.stop()

    def __enter__(self) -> Berth:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _build(endpoint: str, token: str | None, kwargs: dict[str, Any]) -> AsyncBerth:
    return AsyncBerth(endpoint, token, **kwargs)
