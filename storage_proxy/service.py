"""Use cases of both APIs as plain functions over `Volumes`; no aiohttp types here.

Internal operations trust their caller (the cluster secret was checked); public ones take the
verified token claims and refuse anything outside the token's folder, operation and path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from storage_proxy.archive import tar_stream
from storage_proxy.backends.base import (
    Folder,
    QuotaSupport,
    SpliceableBody,
    UploadState,
    VolumeBackend,
)
from storage_proxy.contract import (
    ErrorCode,
    FileEntry,
    FileKind,
    FileOp,
    FolderInfo,
    MountInfo,
    TokenClaims,
    UsageResponse,
)
from storage_proxy.errors import (
    BadRequest,
    FileNotFound,
    IsADirectory,
    QuotaExceeded,
    RangeNotSatisfiable,
    StorageDomainError,
    SymlinkRefused,
    Unsupported,
    UploadTooLarge,
)
from storage_proxy.paths import check_folder_id, clean_relpath, is_within
from storage_proxy.volumes import Volumes

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# ---------------------------------------------------------------- internal: folders


async def create_folder(
    volumes: Volumes, *, volume: str, folder_id: str, quota_bytes: int | None
) -> FolderInfo:
    backend = volumes.get(volume)
    if quota_bytes is not None and not isinstance(backend, QuotaSupport):
        raise Unsupported(f"volume {volume} does not manage quotas")
    await backend.create_folder(folder_id)
    if isinstance(backend, QuotaSupport):
        await backend.set_quota(folder_id, quota_bytes)
    return FolderInfo(volume=volume, folder_id=folder_id, quota_bytes=quota_bytes)


async def delete_folder(volumes: Volumes, *, volume: str, folder_id: str) -> None:
    await volumes.get(volume).delete_folder(folder_id)


async def get_usage(volumes: Volumes, *, volume: str, folder_id: str) -> UsageResponse:
    backend = volumes.get(volume)
    usage = await backend.usage(folder_id)
    quota = await backend.get_quota(folder_id) if isinstance(backend, QuotaSupport) else None
    return UsageResponse(
        used_bytes=usage.used_bytes,
        file_count=usage.file_count,
        reserved_bytes=usage.reserved_bytes,
        quota_bytes=quota,
    )


async def set_quota(
    volumes: Volumes, *, volume: str, folder_id: str, quota_bytes: int | None
) -> None:
    backend = volumes.get(volume)
    if not isinstance(backend, QuotaSupport):
        raise Unsupported(f"volume {volume} does not manage quotas")
    await backend.set_quota(folder_id, quota_bytes)


async def mount_info(volumes: Volumes, *, volume: str, folder_id: str) -> MountInfo:
    return await volumes.get(volume).mount_info(folder_id)


# ---------------------------------------------------------------- file operations (both APIs)


async def open_folder(volumes: Volumes, *, volume: str, folder_id: str) -> Folder:
    return await volumes.get(volume).folder(check_folder_id(folder_id))


async def list_files(folder: Folder, *, path: str) -> list[FileEntry]:
    return await folder.list(clean_relpath(path))


async def make_dir(folder: Folder, *, path: str, parents: bool) -> None:
    await folder.mkdir(clean_relpath(path, allow_root=False), parents=parents)


async def move(folder: Folder, *, src: str, dst: str) -> None:
    await folder.move(clean_relpath(src, allow_root=False), clean_relpath(dst, allow_root=False))


async def delete_files(folder: Folder, *, paths: list[str], recursive: bool) -> None:
    cleaned = [clean_relpath(p, allow_root=False) for p in paths]
    for path in cleaned:
        await folder.delete(path, recursive=recursive)


# ---------------------------------------------------------------- public: token scope


async def authorized_folder(
    volumes: Volumes, claims: TokenClaims, *, op: FileOp, paths: list[str]
) -> tuple[Folder, list[str]]:
    """Open the token's folder after checking the operation and that every path is in scope."""
    if claims.op != op:
        raise StorageDomainError(
            f"token allows {claims.op.value}, not {op.value}", code=ErrorCode.TOKEN_SCOPE
        )
    prefix = clean_relpath(claims.path) if claims.path else ""
    cleaned = [clean_relpath(p) for p in paths]
    for path in cleaned:
        if not is_within(path, prefix):
            raise StorageDomainError(
                f"path {path!r} is outside the token's path", code=ErrorCode.TOKEN_SCOPE
            )
    folder = await open_folder(volumes, volume=claims.volume, folder_id=claims.folder_id)
    return folder, cleaned


# ---------------------------------------------------------------- public: uploads


async def create_upload(
    volumes: Volumes, claims: TokenClaims, *, length: int, metadata: dict[str, str]
) -> UploadState:
    """Start a tus upload to metadata `path` (else `filename`), checking the quota first."""
    target = metadata.get("path") or metadata.get("filename")
    if not target:
        raise BadRequest("Upload-Metadata must carry 'path' or 'filename'")
    if length < 0:
        raise BadRequest("Upload-Length must not be negative")
    folder, (path,) = await authorized_folder(volumes, claims, op=FileOp.UPLOAD, paths=[target])
    if not path:
        raise BadRequest("upload target must name a file")
    await _check_quota(volumes.get(claims.volume), claims.folder_id, extra_bytes=length)
    return await folder.create_upload(path, length=length, metadata=metadata)


async def upload_status(volumes: Volumes, claims: TokenClaims, *, upload_id: str) -> UploadState:
    folder, _ = await authorized_folder(volumes, claims, op=FileOp.UPLOAD, paths=[])
    state = await folder.get_upload(upload_id)
    _check_upload_scope(claims, state)
    return state


async def write_upload(
    volumes: Volumes,
    claims: TokenClaims,
    *,
    upload_id: str,
    offset: int,
    chunks: AsyncIterable[bytes],
) -> UploadState:
    """Append one PATCH body. One writer per upload (a second gets UploadOffsetMismatch)."""
    folder, _ = await authorized_folder(volumes, claims, op=FileOp.UPLOAD, paths=[])
    key = f"{claims.volume}/{claims.folder_id}/{upload_id}"
    async with volumes.upload_lock(key):
        state = await folder.get_upload(upload_id)
        _check_upload_scope(claims, state)
        # The reservation made at creation is part of `reserved`: a quota lowered since then
        # stops the upload here.
        await _check_quota(volumes.get(claims.volume), claims.folder_id, extra_bytes=0)
        limit = state.length - offset
        bounded = (
            chunks.bounded(limit)
            if isinstance(chunks, SpliceableBody)
            else bounded_chunks(chunks, limit=limit)
        )
        return await folder.write_upload(upload_id, offset=offset, chunks=bounded)


async def abort_upload(volumes: Volumes, claims: TokenClaims, *, upload_id: str) -> None:
    folder, _ = await authorized_folder(volumes, claims, op=FileOp.UPLOAD, paths=[])
    key = f"{claims.volume}/{claims.folder_id}/{upload_id}"
    async with volumes.upload_lock(key):
        state = await folder.get_upload(upload_id)
        _check_upload_scope(claims, state)
        await folder.abort_upload(upload_id)


def _check_upload_scope(claims: TokenClaims, state: UploadState) -> None:
    prefix = clean_relpath(claims.path) if claims.path else ""
    if not is_within(state.path, prefix):
        raise StorageDomainError(
            "upload target is outside the token's path", code=ErrorCode.TOKEN_SCOPE
        )


async def _check_quota(backend: VolumeBackend, folder_id: str, *, extra_bytes: int) -> None:
    if not isinstance(backend, QuotaSupport):
        return
    quota = await backend.get_quota(folder_id)
    if quota is None:
        return
    usage = await backend.usage(folder_id)
    needed = usage.used_bytes + usage.reserved_bytes + extra_bytes
    if needed > quota:
        raise QuotaExceeded(
            f"folder quota is {quota} bytes; {usage.used_bytes} used, "
            f"{usage.reserved_bytes} reserved by unfinished uploads, {extra_bytes} requested"
        )


async def bounded_chunks(chunks: AsyncIterable[bytes], *, limit: int) -> AsyncIterator[bytes]:
    """Pass at most `limit` bytes on, then refuse the request (tus: never past Upload-Length)."""
    left = limit
    async for chunk in chunks:
        if len(chunk) > left:
            if left:
                yield chunk[:left]
            raise UploadTooLarge("request body goes past Upload-Length")
        left -= len(chunk)
        yield chunk


# ---------------------------------------------------------------- public: downloads


@dataclass(frozen=True)
class Download:
    entry: FileEntry
    start: int
    end: int  # exclusive
    partial: bool
    folder: Folder
    path: str

    def body(self) -> AsyncIterator[bytes]:
        return self.folder.read(self.path, start=self.start, end=self.end)


async def download(
    volumes: Volumes, claims: TokenClaims, *, path: str, range_header: str | None
) -> Download:
    folder, (clean,) = await authorized_folder(volumes, claims, op=FileOp.DOWNLOAD, paths=[path])
    entry = await folder.stat(clean)
    if entry.kind == FileKind.SYMLINK:
        raise SymlinkRefused(f"{clean} is a symlink; symlinks are not followed")
    if entry.kind == FileKind.DIRECTORY:
        raise IsADirectory(f"{clean} is a directory; download it as an archive")
    if entry.kind != FileKind.FILE:
        raise FileNotFound(f"{clean} is not a regular file")
    span = parse_range(range_header, entry.size)
    start, end = span if span else (0, entry.size)
    return Download(
        entry=entry, start=start, end=end, partial=span is not None, folder=folder, path=clean
    )


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=` range → [start, end); None serves the whole file (absent, multi, garbled)."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]) + 1, size) if match[2] else size
        if match[2] and int(match[2]) < start:
            return None
    else:
        start, end = max(size - int(match[2]), 0), size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(f"range {header!r} is outside the file's {size} bytes")
    return start, end


async def archive(
    volumes: Volumes, claims: TokenClaims, *, path: str, max_files: int
) -> tuple[str, AsyncIterator[bytes]]:
    """(archive base name, tar stream) of directory `path`."""
    folder, (clean,) = await authorized_folder(volumes, claims, op=FileOp.ARCHIVE, paths=[path])
    entry = await folder.stat(clean)
    if entry.kind != FileKind.DIRECTORY:
        raise BadRequest(f"{clean or '/'} is not a directory")
    name = clean.rsplit("/", 1)[-1] if clean else claims.folder_id
    return name, tar_stream(folder, path=clean, arcroot=name, max_files=max_files)
