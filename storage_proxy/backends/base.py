"""Volume backend protocols.

A volume is one backend instance (a directory tree or a bucket). The required protocol,
`VolumeBackend`, has five methods; file operations live on a per-folder handle (`Folder`), itself
made of three small protocols. Optional capabilities are separate protocols detected with
isinstance(): `QuotaSupport` (limits enforced by the proxy on uploads) and `Lifecycle` (resources
opened at startup, crashed deletes finished there).

Every path a backend receives has been cleaned by `storage_proxy.paths.clean_relpath`: relative,
'/'-separated, no `..`, '' for the folder root. Backends still never follow symlinks, because
a container that mounts the folder can plant one at any time.

Errors are `storage_proxy.errors` subclasses; anything else is a bug. Nothing retries inside a
backend: callers (the manager's reconcilers, the client) retry idempotent operations.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol, runtime_checkable

from storage_proxy.contract import FileEntry, MountInfo


@dataclass(frozen=True)
class FolderUsage:
    used_bytes: int
    file_count: int
    reserved_bytes: int = 0
    """Declared length of unfinished uploads: counted against the quota until they finish."""


@dataclass(frozen=True)
class UploadState:
    upload_id: str
    path: str
    length: int
    offset: int
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.offset >= self.length


@runtime_checkable
class FolderReader(Protocol):
    async def stat(self, path: str) -> FileEntry:
        """Entry at `path` (a symlink is reported as one, not followed). FileNotFound."""
        ...

    async def list(self, path: str) -> list[FileEntry]:
        """Direct children of directory `path`. FileNotFound, NotADirectory, SymlinkRefused."""
        ...

    def read(self, path: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of regular file `path`; end=None means to its end.

        FileNotFound, IsADirectory, SymlinkRefused are raised at the first iteration.
        """
        ...

    def walk(self, path: str) -> AsyncIterator[FileEntry]:
        """Every entry below directory `path`, parents before children (for archives)."""
        ...


@runtime_checkable
class FolderWriter(Protocol):
    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        """Create a directory. FileExists (unless parents and it is a directory), FileNotFound."""
        ...

    async def move(self, src: str, dst: str) -> None:
        """Rename `src` to `dst`; never overwrites (FileExists). Parent of dst must exist."""
        ...

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, symlink or (empty unless recursive) directory. DirectoryNotEmpty."""
        ...


@runtime_checkable
class FolderUploads(Protocol):
    async def create_upload(
        self, path: str, *, length: int, metadata: dict[str, str]
    ) -> UploadState:
        """Start a resumable upload of `length` bytes to `path`; nothing is visible at `path`
        until the last byte arrives. IsADirectory when `path` is a directory."""
        ...

    async def get_upload(self, upload_id: str) -> UploadState:
        """Current offset of an upload of this folder. UploadNotFound."""
        ...

    async def write_upload(
        self, upload_id: str, *, offset: int, chunks: AsyncIterable[bytes]
    ) -> UploadState:
        """Append `chunks` at `offset` (must equal the stored offset: UploadOffsetMismatch).

        Bytes received before the stream fails stay written (the client resumes from the new
        offset). When the offset reaches the length, the file appears atomically at its path.
        Callers serialise writers of one upload.
        """
        ...

    async def abort_upload(self, upload_id: str) -> None:
        """Forget an upload and its bytes; idempotent."""
        ...


@runtime_checkable
class Folder(FolderReader, FolderWriter, FolderUploads, Protocol):
    """File-operations handle of one folder."""


@runtime_checkable
class VolumeBackend(Protocol):
    name: str

    async def create_folder(self, folder_id: str) -> None:
        """Create an empty folder; idempotent (an existing folder is kept as is)."""
        ...

    async def delete_folder(self, folder_id: str) -> None:
        """Delete a folder with everything in it; idempotent and crash-safe: once this returns
        or crashes after its first step, the folder is gone for every other call and
        `Lifecycle.start` finishes the removal."""
        ...

    async def usage(self, folder_id: str) -> FolderUsage:
        """Bytes and files in the folder, plus unfinished upload reservations. FolderNotFound."""
        ...

    async def mount_info(self, folder_id: str) -> MountInfo:
        """Where nodes find the folder. FolderNotFound, Unsupported."""
        ...

    async def folder(self, folder_id: str) -> Folder:
        """File-operations handle. FolderNotFound."""
        ...


@runtime_checkable
class QuotaSupport(Protocol):
    async def get_quota(self, folder_id: str) -> int | None:
        """Limit in bytes, None = unlimited. FolderNotFound."""
        ...

    async def set_quota(self, folder_id: str, quota_bytes: int | None) -> None:
        """Set or clear the limit; existing data above a new limit is kept. FolderNotFound."""
        ...


@runtime_checkable
class LocalFileSupport(Protocol):
    """Folders whose files are local file descriptors, so downloads can use sendfile()."""

    async def open_local(self, path: str) -> BinaryIO:
        """Unbuffered read-only file object of regular file `path`, opened without following
        symlinks; the caller closes it. Same errors as FolderReader.read."""
        ...


@runtime_checkable
class SpliceableBody(Protocol):
    """An upload body that a backend writing to a local file descriptor may move into it in the
    kernel (splice) instead of iterating it; iterating it stays valid for every backend."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def bounded(self, limit: int) -> SpliceableBody:
        """The same body, refused with UploadTooLarge past `limit` bytes."""
        ...

    async def splice_into(
        self, fd: int, offset: int, progress: Callable[[int], None]
    ) -> int | None:
        """Write the whole body to `fd` at `offset` and return its length, or None when this
        request cannot be spliced (the caller iterates instead). `progress(end)` is called from
        a worker thread as data lands. Bytes written before a failure stay written."""
        ...


@runtime_checkable
class Lifecycle(Protocol):
    async def start(self) -> None:
        """Open clients, create bookkeeping areas, finish deletions a crash interrupted."""
        ...

    async def close(self) -> None:
        """Release what start() opened; idempotent."""
        ...
