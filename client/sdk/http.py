"""The HTTP layer under the SDK: one httpx.AsyncClient, retries with exponential backoff on
transient failures, error bodies turned into BerthAPIError, and streaming helpers (text chunks and
server-sent events)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from client.sdk.errors import BerthAPIError, BerthConnectionError

RETRY_STATUSES = frozenset({502, 503, 504})
# A POST is retried only when the server certainly did not act on it: the connection was never
# made, it refused with 429, or said 503 (the manager's "cannot serve now"). A 502/504 from a
# proxy may hide a request the manager already executed.
POST_RETRY_STATUSES = frozenset({429, 503})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: delay = min(max_delay_s, base_delay_s * 2**attempt) with full
    jitter; a server's Retry-After wins when it is longer."""

    attempts: int = 5
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        backoff = min(self.max_delay_s, self.base_delay_s * (2**attempt))
        jittered = random.uniform(backoff / 2, backoff)
        if retry_after is not None:
            return min(max(retry_after, jittered), max(self.max_delay_s, retry_after))
        return jittered


NO_RETRY = RetryPolicy(attempts=1)


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retryable_status(method: str, status: int) -> bool:
    if status == 429:
        return True
    if method in IDEMPOTENT:
        return status in RETRY_STATUSES
    return status in POST_RETRY_STATUSES


def _retryable_exc(method: str, exc: httpx.TransportError) -> bool:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return True  # the request never reached the server
    return method in IDEMPOTENT


def api_error(response: httpx.Response, text: str) -> BerthAPIError:
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = None
    return BerthAPIError.from_response(
        status=response.status_code,
        body=body,
        text=text,
        request_id=response.headers.get("X-Request-Id"),
    )


class Transport:
    """Sends requests to one manager with a bearer token, retrying what is safe to retry."""

    def __init__(
        self,
        *,
        endpoint: str,
        token: str | None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "berth-sdk/0.1", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.endpoint = endpoint.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._client = httpx.AsyncClient(
            base_url=self.endpoint, headers=headers, timeout=timeout_s, transport=transport
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Any:
        """The decoded JSON of a successful answer (None for an empty body)."""
        async with self._send(method, path, params=params, json_body=json_body) as response:
            text = (await response.aread()).decode("utf-8", "replace")
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """A successful response whose body is read by the caller, with no read timeout (a
        followed log can stay quiet for hours)."""
        async with self._send(method, path, params=params, stream_timeout=True) as response:
            yield response

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        stream_timeout: bool = False,
    ) -> AsyncIterator[httpx.Response]:
        method = method.upper()
        clean = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        timeout = (
            httpx.Timeout(self._client.timeout.connect or 30.0, read=None)
            if stream_timeout
            else self._client.timeout
        )
        attempt = 0
        while True:
            request = self._client.build_request(
                method, path, params=clean, json=json_body, timeout=timeout
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.TransportError as exc:
                if attempt + 1 >= self.retry.attempts or not _retryable_exc(method, exc):
                    raise BerthConnectionError(
                        f"cannot reach the manager at {self.endpoint}: {_describe(exc)}",
                        endpoint=self.endpoint,
                    ) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if response.status_code < 400:
                try:
                    yield response
                except httpx.TransportError as exc:
                    raise BerthConnectionError(
                        f"the connection to {self.endpoint} broke off: {_describe(exc)}",
                        endpoint=self.endpoint,
                    ) from exc
                finally:
                    await response.aclose()
                return
            try:
                text = (await response.aread()).decode("utf-8", "replace")
            except httpx.TransportError:
                text = ""
            finally:
                await response.aclose()
            if attempt + 1 < self.retry.attempts and _retryable_status(
                method, response.status_code
            ):
                wait = retry_after_s(response.headers.get("Retry-After"))
                await asyncio.sleep(self.retry.delay(attempt, wait))
                attempt += 1
                continue
            raise api_error(response, text)


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event."""

    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[ServerEvent]:
    """Server-sent events from a line stream (the WHATWG event-stream format: `field: value`
    lines, events separated by a blank line, `:` comments ignored)."""
    event, last_id = "message", None
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield ServerEvent(event=event, data="\n".join(data), id=last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
    if data:
        yield ServerEvent(event=event, data="\n".join(data), id=last_id)


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [_param(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
