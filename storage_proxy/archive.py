"""Streamed tar archives of a folder subtree: headers are built per entry, bodies streamed."""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator

from storage_proxy.backends.base import FolderReader
from storage_proxy.contract import FileKind
from storage_proxy.errors import BadRequest, StorageDomainError

BLOCK = 512


async def tar_stream(
    folder: FolderReader, *, path: str, arcroot: str, max_files: int
) -> AsyncIterator[bytes]:
    """Yield a POSIX (pax) tar of directory `path`; members are named `arcroot/<relative>`.

    Symlinks and special files are skipped (never followed). A file that shrinks while it is
    streamed is padded with zeros and one that grows is cut, so the declared sizes hold.
    """
    entries = []
    async for entry in folder.walk(path):
        if entry.kind in (FileKind.FILE, FileKind.DIRECTORY):
            entries.append(entry)
        if len(entries) > max_files:
            raise BadRequest(f"archive would hold more than {max_files} entries")
    yield _header(arcroot, is_dir=True, size=0, mtime=0)
    cut = len(path) + 1 if path else 0
    for entry in entries:
        name = f"{arcroot}/{entry.path[cut:]}"
        mtime = int(entry.modified_at.timestamp()) if entry.modified_at else 0
        if entry.kind == FileKind.DIRECTORY:
            yield _header(name, is_dir=True, size=0, mtime=mtime)
            continue
        yield _header(name, is_dir=False, size=entry.size, mtime=mtime)
        sent = 0
        try:
            async for chunk in folder.read(entry.path, start=0, end=entry.size):
                sent += len(chunk)
                yield chunk
        except StorageDomainError:
            # Removed or replaced by a symlink since the walk: keep the archive well-formed.
            pass
        if sent < entry.size:
            yield bytes(entry.size - sent)
        if entry.size % BLOCK:
            yield bytes(BLOCK - entry.size % BLOCK)
    yield bytes(2 * BLOCK)


def _header(name: str, *, is_dir: bool, size: int, mtime: int) -> bytes:
    info = tarfile.TarInfo(name + "/" if is_dir else name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.size = size
    info.mtime = mtime
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
