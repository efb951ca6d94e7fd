"""Upload writes of the posix backend: batched pwritev() in a thread, and early writeback."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
from collections.abc import AsyncIterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

# Network filesystems prefer large writes; a few MiB per write call keeps syscalls cheap.
WRITE_BATCH = 4 * 1024 * 1024
# Disk writes of an upload are queued in steps of at least this much (see Writeback).
WRITEBACK_STEP = 8 * 1024 * 1024


async def write_chunks(
    fd: int, offset: int, chunks: AsyncIterable[bytes], writeback: Writeback
) -> int:
    """Write `chunks` from `offset` in WRITE_BATCH batches; the end position."""
    position = offset
    buffer: list[bytes] = []
    buffered = 0
    # One batch is written in a thread while the next one is received (double buffering).
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered >= WRITE_BATCH:
                if writing is not None:
                    await writing
                    writeback.advance(position)
                writing = asyncio.ensure_future(
                    asyncio.to_thread(_pwritev_all, fd, buffer, position)
                )
                position += buffered
                buffer, buffered = [], 0
    finally:
        # Bytes that arrived before a failure are kept: the client resumes after them.
        if writing is not None:
            await writing
        if buffered:
            await asyncio.to_thread(_pwritev_all, fd, buffer, position)
            position += buffered
    return position


class Writeback:
    """Starts the disk writes of an upload's file while it is still being received.

    Left to the kernel, a fresh 1 GiB upload stays dirty in the page cache (under the
    dirty_background threshold of a machine with RAM to spare) and the final fsync() then writes
    all of it while the upload waits: on the development VM that was 1.8 s of a 3.6 s upload.
    sync_file_range(SYNC_FILE_RANGE_WRITE) queues the writes of what has landed so far, so the
    disk works during the transfer and fsync() only waits for the tail. It blocks while the
    disk queue is full, so it runs in its own thread (at most one call in flight per upload)
    and never holds the receive path up. Durability still comes from the fsync() before the
    rename; this only moves the disk's work earlier.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._queued = offset
        self._pending: Future[None] | None = None
        self._lock = threading.Lock()

    def advance(self, end: int) -> None:
        """Bytes up to `end` are in the page cache; thread-safe, never blocks."""
        if _sync_file_range is None:
            return
        with self._lock:
            if end - self._queued < WRITEBACK_STEP:
                return
            if self._pending is not None and not self._pending.done():
                return  # the next call covers this range too
            start, self._queued = self._queued, end
            self._pending = _WRITEBACK_POOL.submit(_start_writeback, self._fd, start, end - start)

    def wait(self) -> None:
        """Block until no call is in flight (before the descriptor is closed)."""
        with self._lock:
            pending = self._pending
        if pending is not None:
            # Writeback is an optimisation: an error here resurfaces in fsync() if it matters.
            with contextlib.suppress(OSError):
                pending.result()


def _start_writeback(fd: int, offset: int, length: int) -> None:
    assert _sync_file_range is not None
    if _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _load_sync_file_range() -> Any:
    """libc's sync_file_range (Linux), or None; the os module does not wrap it."""
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>
# Shared by all uploads: each has at most one call in flight, and they only queue disk writes.
_WRITEBACK_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="writeback")


def _pwritev_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` at `offset` without joining them first (one copy less per byte)."""
    views = [memoryview(c) for c in chunks if c]
    while views:
        written = os.pwritev(fd, views, offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
