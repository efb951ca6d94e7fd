"""POSIX volume: a directory on local disk, NFS or a distributed filesystem mounted on every node.

Layout under the volume root:
    <folder_id>/                      the folder (what containers see)
    .berth/quota/<folder_id>.json     quota limit (accounting mode)
    .berth/uploads/<folder_id>/       <upload>.json + <upload>.part for unfinished uploads
    .berth/trash/                     folders being deleted (rename first, then remove)

Uploads are written beside the folder on the same filesystem, so finishing one is a rename:
no partial file ever carries its final name. Every path walk opens one component at a time
relative to its parent's descriptor with O_NOFOLLOW, so a symlink planted anywhere in a folder is
refused instead of followed, and nothing outside the folder is reached.
"""

from __future__ import annotations

import asyncio
import builtins
import errno
import json
import os
import shutil
import stat as stat_mod
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from storage_proxy.backends.base import FolderUsage, SpliceableBody, UploadState
from storage_proxy.backends.posix_io import Writeback, write_chunks
from storage_proxy.config import PosixVolumeOptions
from storage_proxy.contract import FileEntry, FileKind, MountInfo
from storage_proxy.errors import (
    BadRequest,
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    FolderNotFound,
    IsADirectory,
    NotADirectory,
    SymlinkRefused,
    UploadNotFound,
    UploadOffsetMismatch,
)
from storage_proxy.paths import check_folder_id, parent_and_name

META_DIR = ".berth"
READ_CHUNK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PosixBackend:
    """Directory-backed volume with proxy-side quota accounting (QuotaSupport)."""

    def __init__(self, name: str, options: PosixVolumeOptions) -> None:
        self.name = name
        self.options = options
        self.root = options.root

    @classmethod
    def from_options(cls, name: str, options: object) -> PosixBackend | PosixBackendNoQuota:
        opts = PosixVolumeOptions.model_validate(options)
        if opts.quota_mode == "none":
            return PosixBackendNoQuota(name, opts)
        return cls(name, opts)

    # ------------------------------------------------------------ Lifecycle

    async def start(self) -> None:
        await asyncio.to_thread(self._start_sync)

    async def close(self) -> None:
        return None

    def _start_sync(self) -> None:
        if not self.root.is_dir():
            raise FileNotFoundError(f"volume {self.name}: root {self.root} is not a directory")
        for sub in ("quota", "uploads", "trash"):
            (self.root / META_DIR / sub).mkdir(parents=True, exist_ok=True)
        self._empty_trash()

    # ------------------------------------------------------------ VolumeBackend

    async def create_folder(self, folder_id: str) -> None:
        path = self._folder_path(folder_id)

        def create() -> None:
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir() or path.is_symlink():
                    raise FileExists(f"{folder_id} exists and is not a folder") from None

        await asyncio.to_thread(create)

    async def delete_folder(self, folder_id: str) -> None:
        check_folder_id(folder_id)
        await asyncio.to_thread(self._delete_sync, folder_id)

    async def usage(self, folder_id: str) -> FolderUsage:
        path = self._existing(folder_id)
        return await asyncio.to_thread(self._usage_sync, folder_id, path)

    async def mount_info(self, folder_id: str) -> MountInfo:
        self._existing(folder_id)
        node_root = self.options.node_root or self.root
        return MountInfo(
            volume=self.name,
            folder_id=folder_id,
            host_path=str(node_root / folder_id),
            kind="bind",
        )

    async def folder(self, folder_id: str) -> PosixFolder:
        path = self._existing(folder_id)
        uploads = self.root / META_DIR / "uploads" / folder_id
        return PosixFolder(path, uploads)

    # ------------------------------------------------------------ QuotaSupport

    async def get_quota(self, folder_id: str) -> int | None:
        self._existing(folder_id)
        path = self._quota_path(folder_id)
        try:
            data = json.loads(await asyncio.to_thread(path.read_text))
        except FileNotFoundError:
            return None
        value = data.get("quota_bytes")
        return int(value) if value is not None else None

    async def set_quota(self, folder_id: str, quota_bytes: int | None) -> None:
        self._existing(folder_id)
        path = self._quota_path(folder_id)
        await asyncio.to_thread(_write_json_atomic, path, {"quota_bytes": quota_bytes})

    # ------------------------------------------------------------ helpers

    def _folder_path(self, folder_id: str) -> Path:
        return self.root / check_folder_id(folder_id)

    def _quota_path(self, folder_id: str) -> Path:
        return self.root / META_DIR / "quota" / f"{folder_id}.json"

    def _existing(self, folder_id: str) -> Path:
        path = self._folder_path(folder_id)
        if path.is_symlink() or not path.is_dir():
            raise FolderNotFound(f"folder {folder_id} does not exist on volume {self.name}")
        return path

    def _delete_sync(self, folder_id: str) -> None:
        trash = self.root / META_DIR / "trash"
        tag = uuid.uuid4().hex[:12]
        # The rename is the commit point: afterwards the folder is gone for every caller, and a
        # crash before the rmtree leaves only trash that _empty_trash() removes on startup.
        for src, label in (
            (self.root / folder_id, "data"),
            (self.root / META_DIR / "uploads" / folder_id, "uploads"),
        ):
            try:
                os.rename(src, trash / f"{folder_id}.{label}.{tag}")
            except FileNotFoundError:
                pass
        self._quota_path(folder_id).unlink(missing_ok=True)
        self._empty_trash()

    def _empty_trash(self) -> None:
        trash = self.root / META_DIR / "trash"
        for entry in os.scandir(trash):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)

    def _usage_sync(self, folder_id: str, path: Path) -> FolderUsage:
        used = 0
        count = 0
        stack = [path]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    if stat_mod.S_ISDIR(st.st_mode):
                        stack.append(Path(entry.path))
                    elif stat_mod.S_ISREG(st.st_mode):
                        used += st.st_size
                        count += 1
        reserved = 0
        uploads = self.root / META_DIR / "uploads" / folder_id
        if uploads.is_dir():
            for meta in uploads.glob("*.json"):
                try:
                    reserved += int(json.loads(meta.read_text())["length"])
                except (FileNotFoundError, ValueError, KeyError):
                    continue
        return FolderUsage(used_bytes=used, file_count=count, reserved_bytes=reserved)


class PosixBackendNoQuota:
    """Directory-backed volume whose quotas belong to the filesystem (quota_mode = "none")."""

    def __init__(self, name: str, options: PosixVolumeOptions) -> None:
        self._inner = PosixBackend(name, options)
        self.name = name

    async def start(self) -> None:
        await self._inner.start()

    async def close(self) -> None:
        await self._inner.close()

    async def create_folder(self, folder_id: str) -> None:
        await self._inner.create_folder(folder_id)

    async def delete_folder(self, folder_id: str) -> None:
        await self._inner.delete_folder(folder_id)

    async def usage(self, folder_id: str) -> FolderUsage:
        return await self._inner.usage(folder_id)

    async def mount_info(self, folder_id: str) -> MountInfo:
        return await self._inner.mount_info(folder_id)

    async def folder(self, folder_id: str) -> PosixFolder:
        return await self._inner.folder(folder_id)


class PosixFolder:
    """File operations inside one folder directory; never follows a symlink."""

    def __init__(self, root: Path, uploads: Path) -> None:
        self.root = root
        self.uploads = uploads

    # ------------------------------------------------------------ FolderReader

    async def stat(self, path: str) -> FileEntry:
        return await asyncio.to_thread(self._stat_sync, path)

    async def list(self, path: str) -> list[FileEntry]:
        return await asyncio.to_thread(self._list_sync, path)

    async def read(
        self, path: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        fd = await asyncio.to_thread(self._open_file, path)
        try:
            size = os.fstat(fd).st_size
            stop = size if end is None else min(end, size)
            offset = start
            while offset < stop:
                data = await asyncio.to_thread(
                    os.pread, fd, min(READ_CHUNK, stop - offset), offset
                )
                if not data:
                    break
                offset += len(data)
                yield data
        finally:
            os.close(fd)

    async def open_local(self, path: str) -> BinaryIO:
        fd = await asyncio.to_thread(self._open_file, path)
        return os.fdopen(fd, "rb", buffering=0)

    async def walk(self, path: str) -> AsyncIterator[FileEntry]:
        pending = [path]
        while pending:
            current = pending.pop(0)
            for entry in await asyncio.to_thread(self._list_sync, current):
                yield entry
                if entry.kind == FileKind.DIRECTORY:
                    pending.append(entry.path)

    # ------------------------------------------------------------ FolderWriter

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        await asyncio.to_thread(self._mkdir_sync, path, parents)

    async def move(self, src: str, dst: str) -> None:
        await asyncio.to_thread(self._move_sync, src, dst)

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        await asyncio.to_thread(self._delete_sync, path, recursive)

    # ------------------------------------------------------------ FolderUploads

    async def create_upload(
        self, path: str, *, length: int, metadata: dict[str, str]
    ) -> UploadState:
        upload_id = uuid.uuid4().hex
        await asyncio.to_thread(self._check_upload_target, path)

        def create() -> None:
            self.uploads.mkdir(parents=True, exist_ok=True)
            (self.uploads / f"{upload_id}.part").touch(exist_ok=False)
            meta = {"path": path, "length": length, "metadata": metadata}
            _write_json_atomic(self.uploads / f"{upload_id}.json", meta)

        await asyncio.to_thread(create)
        state = UploadState(upload_id, path, length, 0, metadata)
        if length == 0:
            await asyncio.to_thread(self._finish_upload, state)
        return state

    async def get_upload(self, upload_id: str) -> UploadState:
        return await asyncio.to_thread(self._load_upload, upload_id)

    async def write_upload(
        self, upload_id: str, *, offset: int, chunks: AsyncIterable[bytes]
    ) -> UploadState:
        state = await asyncio.to_thread(self._load_upload, upload_id)
        if state.completed:
            raise UploadOffsetMismatch("upload is already complete")
        if offset != state.offset:
            raise UploadOffsetMismatch(f"upload is at offset {state.offset}, not {offset}")
        part = self.uploads / f"{upload_id}.part"
        fd = await asyncio.to_thread(os.open, part, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        writeback = Writeback(fd, offset)
        try:
            # A large PATCH body goes socket → file in the kernel (api/splice.py); others, and
            # requests that cannot be spliced, are iterated and written in batches.
            moved = None
            if isinstance(chunks, SpliceableBody):
                moved = await chunks.splice_into(fd, offset, writeback.advance)
            if moved is not None:
                position = offset + moved
            else:
                position = await write_chunks(fd, offset, chunks, writeback)
        finally:
            try:
                await asyncio.to_thread(writeback.wait)
            finally:
                await asyncio.to_thread(os.close, fd)
        state = UploadState(upload_id, state.path, state.length, position, state.metadata)
        if state.completed:
            await asyncio.to_thread(self._finish_upload, state)
        return state

    async def abort_upload(self, upload_id: str) -> None:
        _check_upload_id(upload_id)
        for suffix in (".part", ".json"):
            await asyncio.to_thread((self.uploads / f"{upload_id}{suffix}").unlink, True)

    # ------------------------------------------------------------ sync helpers

    @contextmanager
    def _dir(self, path: str, *, create: bool = False) -> Iterator[int]:
        """Descriptor of directory `path`, opened component by component without following."""
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in path.split("/") if path else []:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise FileNotFound(f"{path}: no such directory") from None
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _walk_error(exc, part, fd, path) from None
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _stat_sync(self, path: str) -> FileEntry:
        if not path:
            return _entry("", "", os.stat(self.root))
        parent, name = parent_and_name(path)
        with self._dir(parent) as dfd:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise FileNotFound(f"{path}: no such file or directory") from None
        return _entry(path, name, st)

    def _list_sync(self, path: str) -> builtins.list[FileEntry]:
        if path:
            self._refuse_non_dir(path)
        entries = []
        with self._dir(path) as dfd, os.scandir(dfd) as it:
            for item in it:
                st = item.stat(follow_symlinks=False)
                child = f"{path}/{item.name}" if path else item.name
                entries.append(_entry(child, item.name, st))
        return sorted(entries, key=lambda e: e.name)

    def _refuse_non_dir(self, path: str) -> None:
        entry = self._stat_sync(path)
        if entry.kind == FileKind.SYMLINK:
            raise SymlinkRefused(f"{path} is a symlink; symlinks are not followed")
        if entry.kind != FileKind.DIRECTORY:
            raise NotADirectory(f"{path} is not a directory")

    def _open_file(self, path: str) -> int:
        if not path:
            raise IsADirectory("the folder root is a directory")
        parent, name = parent_and_name(path)
        with self._dir(parent) as dfd:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except FileNotFoundError:
                raise FileNotFound(f"{path}: no such file") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise SymlinkRefused(f"{path} is a symlink; symlinks are not followed")
                raise
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(fd)
            if stat_mod.S_ISDIR(st.st_mode):
                raise IsADirectory(f"{path} is a directory")
            raise BadRequest(f"{path} is not a regular file")
        return fd

    def _mkdir_sync(self, path: str, parents: bool) -> None:
        if not path:
            raise FileExists("the folder root exists")
        parent, name = parent_and_name(path)
        with self._dir(parent, create=parents) as dfd:
            try:
                os.mkdir(name, dir_fd=dfd)
            except FileExistsError:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if not (parents and stat_mod.S_ISDIR(st.st_mode)):
                    raise FileExists(f"{path} already exists") from None

    def _move_sync(self, src: str, dst: str) -> None:
        if not src or not dst:
            raise BadRequest("the folder root cannot be moved or replaced")
        if dst == src or dst.startswith(src + "/"):
            raise BadRequest("cannot move a directory into itself")
        sparent, sname = parent_and_name(src)
        dparent, dname = parent_and_name(dst)
        with self._dir(sparent) as sfd, self._dir(dparent) as dfd:
            try:
                os.stat(sname, dir_fd=sfd, follow_symlinks=False)
            except FileNotFoundError:
                raise FileNotFound(f"{src}: no such file or directory") from None
            try:
                os.stat(dname, dir_fd=dfd, follow_symlinks=False)
                raise FileExists(f"{dst} already exists")
            except FileNotFoundError:
                pass
            os.rename(sname, dname, src_dir_fd=sfd, dst_dir_fd=dfd)

    def _delete_sync(self, path: str, recursive: bool) -> None:
        if not path:
            raise BadRequest("delete the folder through the manager, not its root")
        parent, name = parent_and_name(path)
        with self._dir(parent) as dfd:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                raise FileNotFound(f"{path}: no such file or directory") from None
            if not stat_mod.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=dfd)
            elif recursive:
                # rmtree with dir_fd uses the fd-based walk that never follows symlinks.
                shutil.rmtree(name, dir_fd=dfd)
            else:
                try:
                    os.rmdir(name, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise DirectoryNotEmpty(f"{path} is not empty") from None
                    raise

    def _check_upload_target(self, path: str) -> None:
        try:
            entry = self._stat_sync(path)
        except FileNotFound:
            return
        if entry.kind == FileKind.DIRECTORY:
            raise IsADirectory(f"{path} is a directory")
        if entry.kind == FileKind.SYMLINK:
            raise SymlinkRefused(f"{path} is a symlink")

    def _load_upload(self, upload_id: str) -> UploadState:
        _check_upload_id(upload_id)
        try:
            meta = json.loads((self.uploads / f"{upload_id}.json").read_text())
        except FileNotFoundError:
            raise UploadNotFound(f"upload {upload_id} does not exist") from None
        try:
            offset = os.stat(self.uploads / f"{upload_id}.part").st_size
        except FileNotFoundError:
            # Crashed between the final rename and removing the metadata: it did complete.
            offset = int(meta["length"])
        return UploadState(upload_id, meta["path"], int(meta["length"]), offset, meta["metadata"])

    def _finish_upload(self, state: UploadState) -> None:
        part = self.uploads / f"{state.upload_id}.part"
        parent, name = parent_and_name(state.path)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        with self._dir(parent, create=True) as dfd:
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat_mod.S_ISDIR(st.st_mode):
                    raise IsADirectory(f"{state.path} became a directory during the upload")
            except FileNotFoundError:
                pass
            # Same filesystem, so the rename is atomic: readers see the old file or the new one.
            os.rename(part, name, dst_dir_fd=dfd)
        (self.uploads / f"{state.upload_id}.json").unlink(missing_ok=True)


def _walk_error(exc: OSError, part: str, dfd: int, path: str) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        try:
            st = os.stat(part, dir_fd=dfd, follow_symlinks=False)
        except OSError:
            return FileNotFound(f"{path}: no such directory")
        if stat_mod.S_ISLNK(st.st_mode):
            return SymlinkRefused(f"{path}: '{part}' is a symlink; symlinks are not followed")
        return NotADirectory(f"{path}: '{part}' is not a directory")
    return exc


def _entry(path: str, name: str, st: os.stat_result) -> FileEntry:
    if stat_mod.S_ISLNK(st.st_mode):
        kind = FileKind.SYMLINK
    elif stat_mod.S_ISDIR(st.st_mode):
        kind = FileKind.DIRECTORY
    elif stat_mod.S_ISREG(st.st_mode):
        kind = FileKind.FILE
    else:
        kind = FileKind.OTHER
    return FileEntry(
        path=path,
        name=name,
        kind=kind,
        size=st.st_size if kind == FileKind.FILE else 0,
        modified_at=datetime.fromtimestamp(st.st_mtime, UTC),
    )


def _check_upload_id(upload_id: str) -> None:
    if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
        raise UploadNotFound(f"upload {upload_id!r} does not exist")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
