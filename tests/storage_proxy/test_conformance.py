"""One conformance suite for every VolumeBackend: posix on a local directory, S3 on SeaweedFS,
and posix on a SeaweedFS `weed mount` (the networked filesystem; slow)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage_proxy.backends.base import (
    Folder,
    Lifecycle,
    QuotaSupport,
    VolumeBackend,
)
from storage_proxy.backends.posix import PosixBackend
from storage_proxy.backends.s3 import S3Backend
from storage_proxy.config import PosixVolumeOptions, S3VolumeOptions
from storage_proxy.contract import FileKind, FuseMountSpec
from storage_proxy.errors import (
    DirectoryNotEmpty,
    FileExists,
    FileNotFound,
    FolderNotFound,
    IsADirectory,
    NotADirectory,
    UploadNotFound,
    UploadOffsetMismatch,
)
from storage_proxy.fuse import FuseMount, mount_folder, unmount_sync
from tests.storage_proxy.conftest import S3Server

MiB = 1024 * 1024


class LazyWeedMount:
    """Mounts a fresh filer directory on first use; the module fixture unmounts it."""

    def __init__(self, server: S3Server, base: Path) -> None:
        self.server = server
        self.base = base
        self.mount: FuseMount | None = None

    async def root(self) -> Path:
        if self.mount is None:
            spec = FuseMountSpec(
                filer=self.server.filer, filer_path=f"/berth-conformance-{uuid.uuid4().hex}"
            )
            self.mount = await mount_folder(spec, self.base / "mnt", weed_binary=self.server.weed)
        return self.mount.mountpoint


@pytest.fixture(scope="module")
def weed_mount(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LazyWeedMount]:
    lazy = LazyWeedMount(s3_server, tmp_path_factory.mktemp("weedmount"))
    yield lazy
    if lazy.mount is not None:
        unmount_sync(lazy.mount)


@pytest.fixture(
    params=[
        "posix",
        "s3",
        pytest.param("posix_on_weed_mount", marks=pytest.mark.slow),
    ]
)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, s3_options: S3VolumeOptions
) -> AsyncIterator[VolumeBackend]:
    b: VolumeBackend
    if request.param == "posix":
        root = tmp_path / "vol"
        root.mkdir()
        b = PosixBackend("local", PosixVolumeOptions(root=root))
    elif request.param == "s3":
        b = S3Backend("objects", s3_options)
    else:
        lazy: LazyWeedMount = request.getfixturevalue("weed_mount")
        root = await lazy.root() / uuid.uuid4().hex
        root.mkdir()
        b = PosixBackend("weed", PosixVolumeOptions(root=root))
    assert isinstance(b, Lifecycle)
    await b.start()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def folder(backend: VolumeBackend) -> Folder:
    folder_id = uuid.uuid4().hex
    await backend.create_folder(folder_id)
    return await backend.folder(folder_id)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(folder: Folder, path: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([c async for c in folder.read(path, start=start, end=end)])


async def _upload(folder: Folder, path: str, data: bytes) -> None:
    state = await folder.create_upload(path, length=len(data), metadata={})
    if data:
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(data))


class TestVolumeBackendConformance:
    async def test_folders_are_created_idempotently_and_start_empty(
        self, backend: VolumeBackend
    ) -> None:
        folder_id = uuid.uuid4().hex
        await backend.create_folder(folder_id)
        await backend.create_folder(folder_id)
        usage = await backend.usage(folder_id)
        assert (usage.used_bytes, usage.file_count, usage.reserved_bytes) == (0, 0, 0)
        assert await (await backend.folder(folder_id)).list("") == []

    async def test_unknown_folder_is_reported(self, backend: VolumeBackend) -> None:
        with pytest.raises(FolderNotFound):
            await backend.folder(uuid.uuid4().hex)
        with pytest.raises(FolderNotFound):
            await backend.usage(uuid.uuid4().hex)

    async def test_upload_is_invisible_until_complete_then_atomic(self, folder: Folder) -> None:
        state = await folder.create_upload("docs/a.txt", length=10, metadata={"k": "v"})
        state = await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"hello"))
        assert state.offset == 5 and not state.completed
        with pytest.raises(FileNotFound):
            await folder.stat("docs/a.txt")
        state = await folder.write_upload(state.upload_id, offset=5, chunks=_chunks(b"world"))
        assert state.completed
        assert await _read(folder, "docs/a.txt") == b"helloworld"

    async def test_write_at_wrong_offset_is_refused(self, folder: Folder) -> None:
        state = await folder.create_upload("x.bin", length=4, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"ab"))
        with pytest.raises(UploadOffsetMismatch):
            await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"ab"))
        assert (await folder.get_upload(state.upload_id)).offset == 2

    async def test_interrupted_stream_keeps_received_bytes(self, folder: Folder) -> None:
        state = await folder.create_upload("big.bin", length=12 * MiB, metadata={})

        async def broken() -> AsyncIterator[bytes]:
            yield b"a" * (3 * MiB + 7)
            raise ConnectionResetError("client went away")

        with pytest.raises(ConnectionResetError):
            await folder.write_upload(state.upload_id, offset=0, chunks=broken())
        resumed = await folder.get_upload(state.upload_id)
        assert resumed.offset == 3 * MiB + 7
        rest = 12 * MiB - resumed.offset
        piece = b"b" * (rest // 2)
        mid = await folder.write_upload(
            state.upload_id, offset=resumed.offset, chunks=_chunks(piece)
        )
        tail = b"c" * (rest - len(piece))
        await folder.write_upload(state.upload_id, offset=mid.offset, chunks=_chunks(tail))
        data = await _read(folder, "big.bin")
        assert data == b"a" * (3 * MiB + 7) + piece + tail

    async def test_empty_upload_completes_at_creation(self, folder: Folder) -> None:
        state = await folder.create_upload("empty", length=0, metadata={})
        assert state.completed
        assert (await folder.stat("empty")).size == 0

    async def test_aborted_upload_is_forgotten(self, folder: Folder) -> None:
        state = await folder.create_upload("gone.bin", length=8, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"1234"))
        await folder.abort_upload(state.upload_id)
        await folder.abort_upload(state.upload_id)
        with pytest.raises(UploadNotFound):
            await folder.get_upload(state.upload_id)
        with pytest.raises(FileNotFound):
            await folder.stat("gone.bin")

    async def test_upload_onto_a_directory_is_refused(self, folder: Folder) -> None:
        await folder.mkdir("d")
        with pytest.raises(IsADirectory):
            await folder.create_upload("d", length=3, metadata={})

    async def test_ranged_reads(self, folder: Folder) -> None:
        await _upload(folder, "r.bin", bytes(range(256)))
        assert await _read(folder, "r.bin", 10, 20) == bytes(range(10, 20))
        assert await _read(folder, "r.bin", 250) == bytes(range(250, 256))
        with pytest.raises(IsADirectory):
            await folder.mkdir("dir")
            await _read(folder, "dir")

    async def test_directories(self, folder: Folder) -> None:
        with pytest.raises(FileNotFound):
            await folder.mkdir("a/b")
        await folder.mkdir("a/b", parents=True)
        await folder.mkdir("a/b", parents=True)
        with pytest.raises(FileExists):
            await folder.mkdir("a/b")
        await _upload(folder, "a/b/f.txt", b"data")
        listing = await folder.list("a")
        assert [(e.name, e.kind) for e in listing] == [("b", FileKind.DIRECTORY)]
        inner = await folder.list("a/b")
        assert [(e.path, e.kind, e.size) for e in inner] == [("a/b/f.txt", FileKind.FILE, 4)]
        with pytest.raises(NotADirectory):
            await folder.list("a/b/f.txt")
        with pytest.raises(FileNotFound):
            await folder.list("nope")

    async def test_move_renames_and_never_overwrites(self, folder: Folder) -> None:
        await _upload(folder, "one.txt", b"1")
        await _upload(folder, "two.txt", b"2")
        with pytest.raises(FileExists):
            await folder.move("one.txt", "two.txt")
        await folder.mkdir("sub/deeper", parents=True)
        await _upload(folder, "sub/deeper/x", b"xx")
        await folder.move("sub", "renamed")
        await folder.move("one.txt", "renamed/one.txt")
        assert await _read(folder, "renamed/deeper/x") == b"xx"
        assert await _read(folder, "renamed/one.txt") == b"1"
        names = [e.name for e in await folder.list("")]
        assert names == ["renamed", "two.txt"]
        with pytest.raises(FileNotFound):
            await folder.move("missing", "elsewhere")

    async def test_delete(self, folder: Folder) -> None:
        await folder.mkdir("d/e", parents=True)
        await _upload(folder, "d/e/f", b"f")
        await _upload(folder, "g", b"g")
        with pytest.raises(DirectoryNotEmpty):
            await folder.delete("d")
        await folder.delete("g")
        await folder.delete("d", recursive=True)
        assert await folder.list("") == []
        with pytest.raises(FileNotFound):
            await folder.delete("g")

    async def test_walk_yields_parents_before_children(self, folder: Folder) -> None:
        await folder.mkdir("p/q", parents=True)
        await _upload(folder, "p/q/r.txt", b"r")
        await _upload(folder, "top.txt", b"t")
        paths = [e.path async for e in folder.walk("")]
        assert set(paths) == {"p", "p/q", "p/q/r.txt", "top.txt"}
        assert paths.index("p") < paths.index("p/q") < paths.index("p/q/r.txt")

    async def test_usage_counts_files_and_reservations(self, backend: VolumeBackend) -> None:
        folder_id = uuid.uuid4().hex
        await backend.create_folder(folder_id)
        folder = await backend.folder(folder_id)
        await _upload(folder, "a", b"x" * 100)
        await folder.mkdir("d")
        await _upload(folder, "d/b", b"y" * 50)
        await folder.create_upload("pending", length=1000, metadata={})
        usage = await backend.usage(folder_id)
        assert (usage.used_bytes, usage.file_count, usage.reserved_bytes) == (150, 2, 1000)

    async def test_quota_round_trip(self, backend: VolumeBackend) -> None:
        assert isinstance(backend, QuotaSupport)
        folder_id = uuid.uuid4().hex
        await backend.create_folder(folder_id)
        assert await backend.get_quota(folder_id) is None
        await backend.set_quota(folder_id, 1234)
        assert await backend.get_quota(folder_id) == 1234
        await backend.set_quota(folder_id, None)
        assert await backend.get_quota(folder_id) is None

    async def test_delete_folder_removes_everything_and_is_idempotent(
        self, backend: VolumeBackend
    ) -> None:
        folder_id = uuid.uuid4().hex
        await backend.create_folder(folder_id)
        folder = await backend.folder(folder_id)
        await _upload(folder, "keep/me.txt", b"bye")
        state = await folder.create_upload("half", length=10, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"12345"))
        await backend.delete_folder(folder_id)
        await backend.delete_folder(folder_id)
        with pytest.raises(FolderNotFound):
            await backend.folder(folder_id)
        await backend.create_folder(folder_id)
        fresh = await backend.folder(folder_id)
        assert await fresh.list("") == []
        with pytest.raises(UploadNotFound):
            await fresh.get_upload(state.upload_id)

    async def test_mount_info_names_a_node_path(self, backend: VolumeBackend) -> None:
        folder_id = uuid.uuid4().hex
        await backend.create_folder(folder_id)
        info = await backend.mount_info(folder_id)
        assert info.folder_id == folder_id
        assert os.path.isabs(info.host_path) and info.host_path.endswith(folder_id)
        assert (info.kind == "fuse") == (info.fuse is not None)
