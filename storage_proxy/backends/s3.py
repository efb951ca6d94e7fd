"""S3 volume: one bucket on any S3-compatible server (aiobotocore); a folder is a key prefix.

Keys in the bucket:
    <folder_id>/                         folder marker (the folder exists iff it does)
    <folder_id>/<path>                   files; `<path>/` markers for empty directories
    .berth/quota/<folder_id>.json        quota limit
    .berth/uploads/<folder_id>/<id>.json resumable upload state (multipart id, parts, tail size)
    .berth/uploads/<folder_id>/<id>.tail bytes received after the last full part
    .berth/trash/<folder_id>             tombstone: set before a delete, removed after it

Directories are derived from a full listing of the prefix, not from CommonPrefixes: some servers
(SeaweedFS) keep reporting a prefix after its last object is gone.
Resumable uploads map onto one multipart upload. S3 parts must be at least 5 MiB except the last,
while tus chunks may be any size, so bytes short of a full part are parked in a `.tail` object
between PATCH requests; memory per active upload stays at one part.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from storage_proxy.backends.base import FolderUsage, UploadState
from storage_proxy.config import S3VolumeOptions
from storage_proxy.contract import FileEntry, FileKind, FuseMountSpec, MountInfo
from storage_proxy.errors import (
    BackendError,
    BadRequest,
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    FolderNotFound,
    IsADirectory,
    NotADirectory,
    Unsupported,
    UploadNotFound,
    UploadOffsetMismatch,
)
from storage_proxy.paths import check_folder_id, parent_and_name

META = ".berth"
READ_CHUNK = 1024 * 1024
_DELETE_BATCH = 1000  # S3 DeleteObjects limit


class S3Backend:
    """Bucket-backed volume with proxy-side quota accounting (QuotaSupport, Lifecycle)."""

    def __init__(self, name: str, options: S3VolumeOptions) -> None:
        self.name = name
        self.options = options
        self.bucket = options.bucket
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    @classmethod
    def from_options(cls, name: str, options: object) -> S3Backend:
        return cls(name, S3VolumeOptions.model_validate(options))

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError(f"volume {self.name} is not started")
        return self._client

    # ------------------------------------------------------------ Lifecycle

    def client_context(self) -> Any:
        """aiobotocore client context for this volume (no request is made on entering it)."""
        opts = self.options
        config = AioConfig(
            s3={"addressing_style": opts.addressing_style},
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return get_session().create_client(
            "s3",
            endpoint_url=opts.endpoint_url,
            aws_access_key_id=opts.access_key,
            aws_secret_access_key=opts.secret_key.get_secret_value(),
            region_name=opts.region,
            config=config,
        )

    async def start(self) -> None:
        self._client = await self._stack.enter_async_context(self.client_context())
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            await self._call("create_bucket", Bucket=self.bucket)
        for obj in await self._list_all(f"{META}/trash/"):
            await self._purge(obj["Key"].rsplit("/", 1)[-1])

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    # ------------------------------------------------------------ VolumeBackend

    async def create_folder(self, folder_id: str) -> None:
        check_folder_id(folder_id)
        if await self._exists(f"{META}/trash/{folder_id}"):
            await self._purge(folder_id)
        await self._call("put_object", Bucket=self.bucket, Key=f"{folder_id}/", Body=b"")

    async def delete_folder(self, folder_id: str) -> None:
        check_folder_id(folder_id)
        # The tombstone is the commit point; start() finishes a purge a crash interrupted.
        await self._call(
            "put_object", Bucket=self.bucket, Key=f"{META}/trash/{folder_id}", Body=b""
        )
        await self._purge(folder_id)

    async def usage(self, folder_id: str) -> FolderUsage:
        await self._existing(folder_id)
        used = count = 0
        for obj in await self._list_all(f"{folder_id}/"):
            if not obj["Key"].endswith("/"):
                used += int(obj["Size"])
                count += 1
        reserved = 0
        for obj in await self._list_all(f"{META}/uploads/{folder_id}/"):
            if obj["Key"].endswith(".json"):
                with contextlib.suppress(FileNotFound):
                    reserved += int((await self._get_json(obj["Key"]))["length"])
        return FolderUsage(used_bytes=used, file_count=count, reserved_bytes=reserved)

    async def mount_info(self, folder_id: str) -> MountInfo:
        await self._existing(folder_id)
        if self.options.filer is None:
            raise Unsupported(f"volume {self.name} has no FUSE mount configured (options.filer)")
        base = self.options.filer_buckets_path.rstrip("/")
        return MountInfo(
            volume=self.name,
            folder_id=folder_id,
            host_path=str(self.options.mount_root / self.name / folder_id),
            kind="fuse",
            fuse=FuseMountSpec(
                filer=self.options.filer, filer_path=f"{base}/{self.bucket}/{folder_id}"
            ),
        )

    async def folder(self, folder_id: str) -> S3Folder:
        await self._existing(folder_id)
        return S3Folder(self, folder_id)

    # ------------------------------------------------------------ QuotaSupport

    async def get_quota(self, folder_id: str) -> int | None:
        await self._existing(folder_id)
        try:
            data = await self._get_json(f"{META}/quota/{folder_id}.json")
        except FileNotFound:
            return None
        value = data.get("quota_bytes")
        return int(value) if value is not None else None

    async def set_quota(self, folder_id: str, quota_bytes: int | None) -> None:
        await self._existing(folder_id)
        await self._put_json(f"{META}/quota/{folder_id}.json", {"quota_bytes": quota_bytes})

    # ------------------------------------------------------------ helpers (shared with S3Folder)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFound(f"{kwargs.get('Key', '')}: not found") from None
            if code == "NoSuchUpload":
                raise UploadNotFound("multipart upload is gone") from None
            raise BackendError(f"S3 {method} failed: {code or exc}") from None
        except BotoCoreError as exc:
            raise BackendError(f"S3 {method} failed: {exc}") from None

    async def _exists(self, key: str) -> bool:
        try:
            await self._call("head_object", Bucket=self.bucket, Key=key)
        except FileNotFound:
            return False
        return True

    async def _existing(self, folder_id: str) -> None:
        check_folder_id(folder_id)
        if not await self._exists(f"{folder_id}/"):
            raise FolderNotFound(f"folder {folder_id} does not exist on volume {self.name}")

    async def _list_all(self, prefix: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call("list_objects_v2", **kwargs)
            objects.extend(page.get("Contents", []))
            if not page.get("IsTruncated"):
                return objects
            token = page["NextContinuationToken"]

    async def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": k} for k in keys[i : i + _DELETE_BATCH]]
            await self._call(
                "delete_objects", Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )

    async def _delete_tree(self, keys: list[str], *, root: str) -> None:
        """Delete `keys` and every directory prefix between them and `root` (inclusive),
        deepest first: filer-backed servers keep implicit directories and refuse to drop a
        directory that still has entries."""
        everything = set(keys) | {root}
        for key in keys:
            parts = key[len(root) :].rstrip("/").split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                everything.add(root + "/".join(parts[:depth]) + "/")
        by_depth: dict[int, list[str]] = {}
        for key in everything:
            by_depth.setdefault(key.rstrip("/").count("/"), []).append(key)
        for depth in sorted(by_depth, reverse=True):
            await self._delete_keys(by_depth[depth])

    async def _get_json(self, key: str) -> dict[str, Any]:
        resp = await self._call("get_object", Bucket=self.bucket, Key=key)
        async with resp["Body"] as body:
            data: dict[str, Any] = json.loads(await body.read())
        return data

    async def _put_json(self, key: str, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        await self._call("put_object", Bucket=self.bucket, Key=key, Body=body)

    async def _purge(self, folder_id: str) -> None:
        uploads = f"{META}/uploads/{folder_id}/"
        upload_objs = await self._list_all(uploads)
        for obj in upload_objs:
            if obj["Key"].endswith(".json"):
                with contextlib.suppress(FileNotFound, UploadNotFound):
                    state = await self._get_json(obj["Key"])
                    await self._call(
                        "abort_multipart_upload",
                        Bucket=self.bucket,
                        Key=f"{folder_id}/{state['path']}",
                        UploadId=state["s3_upload_id"],
                    )
        await self._delete_keys([o["Key"] for o in upload_objs])
        keys = [o["Key"] for o in await self._list_all(f"{folder_id}/")]
        await self._delete_tree(keys, root=f"{folder_id}/")
        await self._delete_keys([f"{META}/quota/{folder_id}.json", f"{META}/trash/{folder_id}"])


class S3Folder:
    """File operations on one folder prefix."""

    def __init__(self, backend: S3Backend, folder_id: str) -> None:
        self.b = backend
        self.folder_id = folder_id
        self.prefix = f"{folder_id}/"

    def key(self, path: str) -> str:
        return self.prefix + path

    # ------------------------------------------------------------ FolderReader

    async def stat(self, path: str) -> FileEntry:
        if not path:
            return FileEntry(path="", name="", kind=FileKind.DIRECTORY, size=0)
        name = path.rsplit("/", 1)[-1]
        try:
            head = await self.b._call("head_object", Bucket=self.b.bucket, Key=self.key(path))
            return FileEntry(
                path=path,
                name=name,
                kind=FileKind.FILE,
                size=int(head["ContentLength"]),
                modified_at=head.get("LastModified"),
            )
        except FileNotFound:
            pass
        page = await self.b._call(
            "list_objects_v2", Bucket=self.b.bucket, Prefix=self.key(path) + "/", MaxKeys=1
        )
        if page.get("Contents"):
            return FileEntry(path=path, name=name, kind=FileKind.DIRECTORY, size=0)
        raise FileNotFound(f"{path}: no such file or directory")

    async def list(self, path: str) -> list[FileEntry]:
        base = self.key(path) + "/" if path else self.prefix
        objects = await self.b._list_all(base)
        if path and not objects:
            entry = await self.stat(path)  # raises FileNotFound
            if entry.kind != FileKind.DIRECTORY:
                raise NotADirectory(f"{path} is not a directory")
        files: dict[str, FileEntry] = {}
        dirs: set[str] = set()
        for obj in objects:
            rest = obj["Key"][len(base) :]
            if not rest:
                continue
            head, sep, _ = rest.partition("/")
            child = f"{path}/{head}" if path else head
            if sep:
                dirs.add(head)
            else:
                files[head] = _file_entry(child, head, obj)
        entries = list(files.values()) + [
            FileEntry(path=f"{path}/{d}" if path else d, name=d, kind=FileKind.DIRECTORY, size=0)
            for d in dirs
            if d not in files
        ]
        return sorted(entries, key=lambda e: e.name)

    async def read(
        self, path: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        entry = await self.stat(path)
        if entry.kind == FileKind.DIRECTORY:
            raise IsADirectory(f"{path} is a directory")
        stop = entry.size if end is None else min(end, entry.size)
        if stop <= start:
            return
        resp = await self.b._call(
            "get_object",
            Bucket=self.b.bucket,
            Key=self.key(path),
            Range=f"bytes={start}-{stop - 1}",
        )
        async with resp["Body"] as body:
            while chunk := await body.read(READ_CHUNK):
                yield chunk

    async def walk(self, path: str) -> AsyncIterator[FileEntry]:
        base = self.key(path) + "/" if path else self.prefix
        entries: dict[str, FileEntry] = {}
        for obj in await self.b._list_all(base):
            rest = obj["Key"][len(base) :]
            if not rest:
                continue
            is_marker = rest.endswith("/")
            parts = [p for p in rest.split("/") if p]
            dir_parts = parts if is_marker else parts[:-1]
            for depth in range(1, len(dir_parts) + 1):
                rel = "/".join(dir_parts[:depth])
                full = f"{path}/{rel}" if path else rel
                entries.setdefault(
                    full,
                    FileEntry(
                        path=full, name=dir_parts[depth - 1], kind=FileKind.DIRECTORY, size=0
                    ),
                )
            if not is_marker:
                full = f"{path}/{rest}" if path else rest
                entries[full] = _file_entry(full, parts[-1], obj)
        for full in sorted(entries):
            yield entries[full]

    # ------------------------------------------------------------ FolderWriter

    async def mkdir(self, path: str, *, parents: bool = False) -> None:
        if not path:
            raise FileExists("the folder root exists")
        try:
            entry = await self.stat(path)
        except FileNotFound:
            entry = None
        if entry is not None:
            if parents and entry.kind == FileKind.DIRECTORY:
                return
            raise FileExists(f"{path} already exists")
        parent, _ = parent_and_name(path)
        while parent:
            try:
                pentry = await self.stat(parent)
            except FileNotFound:
                if not parents:
                    raise FileNotFound(f"{parent}: no such directory") from None
            else:
                if pentry.kind != FileKind.DIRECTORY:
                    raise NotADirectory(f"{parent} is not a directory")
                break
            parent, _ = parent_and_name(parent)
        await self.b._call("put_object", Bucket=self.b.bucket, Key=self.key(path) + "/", Body=b"")

    async def move(self, src: str, dst: str) -> None:
        if not src or not dst:
            raise BadRequest("the folder root cannot be moved or replaced")
        if dst == src or dst.startswith(src + "/"):
            raise BadRequest("cannot move a directory into itself")
        entry = await self.stat(src)
        with contextlib.suppress(FileNotFound):
            await self.stat(dst)
            raise FileExists(f"{dst} already exists")
        dparent, _ = parent_and_name(dst)
        if dparent and (await self.stat(dparent)).kind != FileKind.DIRECTORY:
            raise NotADirectory(f"{dparent} is not a directory")
        if entry.kind == FileKind.FILE:
            pairs = [(self.key(src), self.key(dst))]
        else:
            base = self.key(src) + "/"
            pairs = [
                (o["Key"], self.key(dst) + "/" + o["Key"][len(base) :])
                for o in await self.b._list_all(base)
            ]
        for old, new in pairs:
            if new.endswith("/"):
                await self.b._call("put_object", Bucket=self.b.bucket, Key=new, Body=b"")
            else:
                await self.b._call(
                    "copy_object",
                    Bucket=self.b.bucket,
                    Key=new,
                    CopySource={"Bucket": self.b.bucket, "Key": old},
                )
        if entry.kind == FileKind.DIRECTORY:
            await self.b._delete_tree([old for old, _ in pairs], root=self.key(src) + "/")
        else:
            await self.b._delete_keys([self.key(src)])

    async def delete(self, path: str, *, recursive: bool = False) -> None:
        if not path:
            raise BadRequest("delete the folder through the manager, not its root")
        entry = await self.stat(path)
        if entry.kind == FileKind.FILE:
            await self.b._delete_keys([self.key(path)])
            return
        base = self.key(path) + "/"
        keys = [o["Key"] for o in await self.b._list_all(base)]
        if not recursive and any(k != base for k in keys):
            raise DirectoryNotEmpty(f"{path} is not empty")
        await self.b._delete_tree(keys, root=base)

    # ------------------------------------------------------------ FolderUploads

    async def create_upload(
        self, path: str, *, length: int, metadata: dict[str, str]
    ) -> UploadState:
        with contextlib.suppress(FileNotFound):
            if (await self.stat(path)).kind == FileKind.DIRECTORY:
                raise IsADirectory(f"{path} is a directory")
        upload_id = uuid.uuid4().hex
        if length == 0:
            await self.b._call("put_object", Bucket=self.b.bucket, Key=self.key(path), Body=b"")
            return UploadState(upload_id, path, 0, 0, metadata)
        mpu = await self.b._call(
            "create_multipart_upload", Bucket=self.b.bucket, Key=self.key(path)
        )
        state = {
            "path": path,
            "length": length,
            "metadata": metadata,
            "s3_upload_id": mpu["UploadId"],
            "parts": [],
            "tail_size": 0,
        }
        await self.b._put_json(self._state_key(upload_id), state)
        return UploadState(upload_id, path, length, 0, metadata)

    async def get_upload(self, upload_id: str) -> UploadState:
        return _upload_state(upload_id, await self._load(upload_id))

    async def write_upload(
        self, upload_id: str, *, offset: int, chunks: AsyncIterable[bytes]
    ) -> UploadState:
        state = await self._load(upload_id)
        current = _offset(state)
        if offset != current:
            raise UploadOffsetMismatch(f"upload is at offset {current}, not {offset}")
        part_size = self.b.options.part_size_bytes
        buffer = bytearray()
        if state["tail_size"]:
            resp = await self.b._call(
                "get_object", Bucket=self.b.bucket, Key=self._tail_key(upload_id)
            )
            async with resp["Body"] as body:
                buffer += await body.read()
            del buffer[state["tail_size"] :]
        try:
            async for chunk in chunks:
                buffer += chunk
                while len(buffer) >= part_size and _offset(state) + len(buffer) < state["length"]:
                    await self._upload_part(upload_id, state, bytes(buffer[:part_size]))
                    del buffer[:part_size]
        finally:
            # Keep what arrived: park it as the tail so the client can resume after it.
            if _done(state, buffer):
                await self._complete(upload_id, state, bytes(buffer))
            else:
                await self._park_tail(upload_id, state, bytes(buffer))
        return _upload_state(upload_id, state)

    async def abort_upload(self, upload_id: str) -> None:
        try:
            state = await self._load(upload_id)
        except UploadNotFound:
            return
        with contextlib.suppress(UploadNotFound):
            await self.b._call(
                "abort_multipart_upload",
                Bucket=self.b.bucket,
                Key=self.key(state["path"]),
                UploadId=state["s3_upload_id"],
            )
        await self.b._delete_keys([self._state_key(upload_id), self._tail_key(upload_id)])

    # ------------------------------------------------------------ upload helpers

    def _state_key(self, upload_id: str) -> str:
        return f"{META}/uploads/{self.folder_id}/{upload_id}.json"

    def _tail_key(self, upload_id: str) -> str:
        return f"{META}/uploads/{self.folder_id}/{upload_id}.tail"

    async def _load(self, upload_id: str) -> dict[str, Any]:
        if len(upload_id) != 32 or not all(c in "0123456789abcdef" for c in upload_id):
            raise UploadNotFound(f"upload {upload_id!r} does not exist")
        try:
            return await self.b._get_json(self._state_key(upload_id))
        except FileNotFound:
            raise UploadNotFound(f"upload {upload_id} does not exist") from None

    async def _upload_part(self, upload_id: str, state: dict[str, Any], data: bytes) -> None:
        number = len(state["parts"]) + 1
        resp = await self.b._call(
            "upload_part",
            Bucket=self.b.bucket,
            Key=self.key(state["path"]),
            UploadId=state["s3_upload_id"],
            PartNumber=number,
            Body=data,
        )
        state["parts"].append({"n": number, "etag": resp["ETag"], "size": len(data)})
        # The parked tail is now inside this part.
        state["tail_size"] = 0
        await self.b._put_json(self._state_key(upload_id), state)

    async def _park_tail(self, upload_id: str, state: dict[str, Any], data: bytes) -> None:
        if data:
            await self.b._call(
                "put_object", Bucket=self.b.bucket, Key=self._tail_key(upload_id), Body=data
            )
        if state["tail_size"] != len(data):
            state["tail_size"] = len(data)
            await self.b._put_json(self._state_key(upload_id), state)

    async def _complete(self, upload_id: str, state: dict[str, Any], last: bytes) -> None:
        if not state["parts"]:
            # Small file: one PUT is atomic too, and cheaper than a one-part multipart upload.
            await self.b._call(
                "put_object", Bucket=self.b.bucket, Key=self.key(state["path"]), Body=last
            )
            with contextlib.suppress(UploadNotFound):
                await self.b._call(
                    "abort_multipart_upload",
                    Bucket=self.b.bucket,
                    Key=self.key(state["path"]),
                    UploadId=state["s3_upload_id"],
                )
        else:
            if last:
                await self._upload_part(upload_id, state, last)
            await self.b._call(
                "complete_multipart_upload",
                Bucket=self.b.bucket,
                Key=self.key(state["path"]),
                UploadId=state["s3_upload_id"],
                MultipartUpload={
                    "Parts": [{"PartNumber": p["n"], "ETag": p["etag"]} for p in state["parts"]]
                },
            )
        state["parts"] = [{"n": 0, "etag": "", "size": state["length"]}]
        state["tail_size"] = 0
        await self.b._delete_keys([self._state_key(upload_id), self._tail_key(upload_id)])


def _offset(state: dict[str, Any]) -> int:
    return sum(int(p["size"]) for p in state["parts"]) + int(state["tail_size"])


def _done(state: dict[str, Any], buffer: bytearray) -> bool:
    return sum(int(p["size"]) for p in state["parts"]) + len(buffer) >= int(state["length"])


def _upload_state(upload_id: str, state: dict[str, Any]) -> UploadState:
    return UploadState(
        upload_id, state["path"], int(state["length"]), _offset(state), state["metadata"]
    )


def _file_entry(path: str, name: str, obj: dict[str, Any]) -> FileEntry:
    modified = obj.get("LastModified")
    return FileEntry(
        path=path,
        name=name,
        kind=FileKind.FILE,
        size=int(obj["Size"]),
        modified_at=modified if isinstance(modified, datetime) else None,
    )
