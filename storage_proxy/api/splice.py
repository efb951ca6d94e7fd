"""Large tus PATCH bodies moved from the socket into the upload file with splice(2).

Through aiohttp every body byte is copied three times by the CPU: socket → bytes (recv), bytes →
payload bytes (the HTTP parser), bytes → page cache (the write). On a 2-core machine those copies
and the Python work per 256 KiB read were most of an upload's cost. splice() moves the socket's
pages into a pipe by reference and from the pipe into the file's page cache: one copy, in the
kernel, in a worker thread, with the event loop idle.

It applies to plain-TCP requests with a Content-Length whose remaining body is large; anything
else (TLS, chunked or encoded bodies, small PATCHes, a backend without a local file) iterates
the body through aiohttp as before. Taking the socket over leaves aiohttp's parser in the middle
of the body, so such a connection is closed after its response (one reconnect per large PATCH).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
from collections.abc import AsyncIterator, Callable

from aiohttp import ClientConnectionError, StreamReader, web

from storage_proxy.errors import UploadTooLarge
from storage_proxy.service import bounded_chunks

# Below this, the bytes aiohttp already buffered plus a few reads cost less than a reconnect.
SPLICE_MIN_BYTES = 8 * 1024 * 1024
# Bytes per splice() pair; the pipe is enlarged to it (Linux caps it at fs.pipe-max-size).
PIPE_BYTES = 1024 * 1024
# A client that sends nothing for this long is treated as gone (its bytes so far are kept).
IDLE_TIMEOUT_S = 300.0
_CAN_SPLICE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")
_SPLICED = web.RequestKey("body_spliced", bool)


async def close_after_splice(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: tell the client a spliced request's connection ends with it, so it
    does not send its next request on it (the proxy closes it after this response)."""
    if request.get(_SPLICED):
        # The hook runs after aiohttp chose the Connection header, so set it here too.
        response.force_close()
        response.headers["Connection"] = "close"


class RequestBody:
    """The body of one PATCH: iterable chunks for any backend, spliceable for local files."""

    def __init__(self, request: web.Request, limit: int | None = None) -> None:
        self._request = request
        self._limit = limit

    def bounded(self, limit: int) -> RequestBody:
        return RequestBody(self._request, limit)

    def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = _body_chunks(self._request.content)
        return chunks if self._limit is None else bounded_chunks(chunks, limit=self._limit)

    async def splice_into(
        self, fd: int, offset: int, progress: Callable[[int], None]
    ) -> int | None:
        taken = self._take_over()
        if taken is None:
            return None
        sock_fd, prefix, remaining = taken
        total = len(prefix) + remaining
        allowed = total if self._limit is None else min(total, self._limit)
        moved = await asyncio.to_thread(
            _splice_body, sock_fd, prefix[:allowed], fd, offset, allowed - len(prefix), progress
        )
        if allowed < total:
            raise UploadTooLarge("request body goes past Upload-Length")
        return moved

    def _take_over(self) -> tuple[int, bytes, int] | None:
        """Stop aiohttp reading this connection; (socket fd, bytes it buffered, bytes left)."""
        request = self._request
        content = request.content
        transport = request.transport
        length = request.content_length
        if not _CAN_SPLICE or transport is None or length is None:
            return None
        if "Transfer-Encoding" in request.headers or "Content-Encoding" in request.headers:
            return None
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:
            return None
        protocol = request.protocol
        if not hasattr(protocol, "_reading_paused"):
            return None  # an aiohttp whose flow control this code does not know
        if length - content.total_bytes < SPLICE_MIN_BYTES or content.is_eof():
            return None
        # Paused by its own flow control (more than 2x read_bufsize buffered), aiohttp's parser
        # keeps the bytes it has not parsed yet; reading `content` empty resumes it and it parses
        # them into `content`. Nothing awaits in between, so no new bytes arrive meanwhile.
        parts = []
        while (chunk := content.read_nowait(-1)) or protocol._reading_paused:
            if chunk:
                parts.append(chunk)
            else:
                protocol.resume_reading()
        prefix = b"".join(parts)
        remaining = length - content.total_bytes
        # aiohttp must neither read the rest (it would wait out its lingering timeout) nor keep
        # the connection: its parser still expects the body that splice() consumes.
        content.feed_eof()
        request.protocol.close()
        request[_SPLICED] = True  # the response says `Connection: close` (close_after_splice)
        # Last: feed_eof() resumes the transport, and any byte it read from now on would be lost.
        transport.pause_reading()
        return sock.fileno(), prefix, remaining


def _splice_body(
    sock_fd: int,
    prefix: bytes,
    fd: int,
    offset: int,
    count: int,
    progress: Callable[[int], None],
) -> int:
    """Write `prefix`, then `count` bytes from the socket, at `offset`; the bytes written."""
    written = 0
    view = memoryview(prefix)
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        left = count
        while left:
            try:
                n = os.splice(sock_fd, write_end, min(left, PIPE_BYTES), flags=os.SPLICE_F_MOVE)
            except BlockingIOError:
                if not _wait_readable(sock_fd):
                    raise TimeoutError(f"no body bytes for {IDLE_TIMEOUT_S:.0f} s") from None
                continue
            if n == 0:
                raise ConnectionResetError("the client closed the connection mid-body")
            _drain_pipe(read_end, fd, n, offset + written)
            written += n
            left -= n
            progress(offset + written)
    finally:
        os.close(read_end)
        os.close(write_end)
    return written


def _drain_pipe(read_end: int, fd: int, n: int, offset: int) -> None:
    """Move `n` bytes from the pipe into `fd` at `offset`."""
    while n:
        try:
            moved = os.splice(read_end, fd, n, offset_dst=offset, flags=os.SPLICE_F_MOVE)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # A filesystem without splice_write: copy through user space instead.
            data = os.read(read_end, n)
            moved = 0
            while moved < len(data):
                moved += os.pwrite(fd, data[moved:], offset + moved)
        n -= moved
        offset += moved


def _wait_readable(sock_fd: int) -> bool:
    poller = select.poll()
    poller.register(sock_fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return bool(poller.poll(IDLE_TIMEOUT_S * 1000))


async def _body_chunks(content: StreamReader) -> AsyncIterator[bytes]:
    """The request body in chunks; on a lost connection, hand on what already arrived first.

    aiohttp's readers raise as soon as the connection is gone and drop bytes still buffered;
    those bytes reached us intact, and keeping them lets the client resume after them.
    """
    while True:
        try:
            # readchunk hands over received buffers as they are, without joining (copying).
            chunk, _ = await content.readchunk()
        except (ConnectionError, ClientConnectionError):
            salvage = getattr(content, "_read_nowait", None)
            leftover = salvage(-1) if callable(salvage) else b""
            if leftover:
                yield leftover
            raise
        if not chunk:
            if content.at_eof():
                return
            continue
        yield chunk
