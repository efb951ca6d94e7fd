"""Backend behaviour beyond the conformance suite: crash recovery, restarts, capabilities."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_proxy.backends.base import QuotaSupport
from storage_proxy.backends.posix import PosixBackend, PosixBackendNoQuota
from storage_proxy.backends.s3 import S3Backend
from storage_proxy.config import (
    PosixVolumeOptions,
    S3VolumeOptions,
    StorageProxyConfig,
    VolumeConfig,
)
from storage_proxy.errors import FolderNotFound, Unsupported
from storage_proxy.service import create_folder
from storage_proxy.volumes import Volumes, build_backend

MiB = 1024 * 1024


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class TestPosixRecovery:
    async def test_a_delete_that_crashed_after_its_rename_is_finished_on_startup(
        self, tmp_path: Path
    ) -> None:
        backend = PosixBackend("local", PosixVolumeOptions(root=tmp_path))
        await backend.start()
        fid = uuid.uuid4().hex
        await backend.create_folder(fid)
        (tmp_path / fid / "data.bin").write_bytes(b"x" * 1000)
        # The state a crash right after delete_folder's commit point leaves behind.
        os.rename(tmp_path / fid, tmp_path / ".berth" / "trash" / f"{fid}.data.crashed")
        with pytest.raises(FolderNotFound):
            await backend.folder(fid)
        restarted = PosixBackend("local", PosixVolumeOptions(root=tmp_path))
        await restarted.start()
        assert list((tmp_path / ".berth" / "trash").iterdir()) == []

    async def test_an_upload_continues_after_a_proxy_restart(self, tmp_path: Path) -> None:
        first = PosixBackend("local", PosixVolumeOptions(root=tmp_path))
        await first.start()
        fid = uuid.uuid4().hex
        await first.create_folder(fid)
        folder = await first.folder(fid)
        state = await folder.create_upload("f", length=6, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"abc"))
        second = PosixBackend("local", PosixVolumeOptions(root=tmp_path))
        await second.start()
        again = await second.folder(fid)
        assert (await again.get_upload(state.upload_id)).offset == 3
        await again.write_upload(state.upload_id, offset=3, chunks=_chunks(b"def"))
        assert (tmp_path / fid / "f").read_bytes() == b"abcdef"

    async def test_quota_mode_none_offers_no_quota_capability(self, tmp_path: Path) -> None:
        backend = build_backend(
            VolumeConfig(
                name="fsq",
                backend="posix",
                options=PosixVolumeOptions(root=tmp_path, quota_mode="none"),
            )
        )
        assert isinstance(backend, PosixBackendNoQuota) and not isinstance(backend, QuotaSupport)
        volumes = Volumes({"fsq": backend})
        async with volumes.lease():
            assert volumes.info()[0].capabilities == []
            with pytest.raises(Unsupported):
                await create_folder(volumes, volume="fsq", folder_id="f1", quota_bytes=10)
            await create_folder(volumes, volume="fsq", folder_id="f1", quota_bytes=None)
            assert (tmp_path / "f1").is_dir()

    async def test_start_refuses_a_missing_root(self, tmp_path: Path) -> None:
        backend = PosixBackend("gone", PosixVolumeOptions(root=tmp_path / "missing"))
        with pytest.raises(FileNotFoundError):
            await backend.start()


class TestS3Specifics:
    async def test_a_delete_that_crashed_after_its_tombstone_is_finished_on_startup(
        self, s3_backend: S3Backend, s3_options: S3VolumeOptions
    ) -> None:
        fid = uuid.uuid4().hex
        await s3_backend.create_folder(fid)
        folder = await s3_backend.folder(fid)
        state = await folder.create_upload("a/b.bin", length=3, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"abc"))
        await s3_backend._call(
            "put_object", Bucket=s3_options.bucket, Key=f".berth/trash/{fid}", Body=b""
        )
        restarted = S3Backend("objects", s3_options)
        await restarted.start()
        try:
            with pytest.raises(FolderNotFound):
                await restarted.folder(fid)
            assert await restarted._list_all(f"{fid}/") == []
            assert await restarted._list_all(f".berth/trash/{fid}") == []
        finally:
            await restarted.close()

    async def test_a_multipart_upload_continues_after_a_proxy_restart(
        self, s3_backend: S3Backend, s3_options: S3VolumeOptions
    ) -> None:
        fid = uuid.uuid4().hex
        await s3_backend.create_folder(fid)
        folder = await s3_backend.folder(fid)
        size = 11 * MiB + 3
        state = await folder.create_upload("big.bin", length=size, metadata={})
        # One full part plus a parked tail.
        first = b"1" * (6 * MiB)
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(first))
        restarted = S3Backend("objects", s3_options)
        await restarted.start()
        try:
            again = await restarted.folder(fid)
            assert (await again.get_upload(state.upload_id)).offset == len(first)
            rest = b"2" * (size - len(first))
            done = await again.write_upload(
                state.upload_id, offset=len(first), chunks=_chunks(rest)
            )
            assert done.completed
            body = b"".join([c async for c in again.read("big.bin")])
            assert body == first + rest
            assert await restarted._list_all(f".berth/uploads/{fid}/") == []
        finally:
            await restarted.close()

    async def test_addressing_styles_shape_request_urls(self, s3_options: S3VolumeOptions) -> None:
        for style, expected in (
            ("path", f"http://s3.example.test/{s3_options.bucket}/k"),
            ("virtual", f"http://{s3_options.bucket}.s3.example.test/k"),
        ):
            options = s3_options.model_copy(
                update={"addressing_style": style, "endpoint_url": "http://s3.example.test"}
            )
            # Presigning is local: no request leaves the machine.
            async with S3Backend("objects", options).client_context() as client:
                url = await client.generate_presigned_url(
                    "get_object", Params={"Bucket": options.bucket, "Key": "k"}
                )
            assert url.startswith(expected)

    async def test_mount_info_needs_a_filer(self, s3_options: S3VolumeOptions) -> None:
        backend = S3Backend("objects", s3_options.model_copy(update={"filer": None}))
        await backend.start()
        try:
            fid = uuid.uuid4().hex
            await backend.create_folder(fid)
            with pytest.raises(Unsupported):
                await backend.mount_info(fid)
        finally:
            await backend.close()


def test_volumes_are_built_from_entry_points(tmp_path: Path) -> None:
    config = StorageProxyConfig(
        volumes=[
            VolumeConfig(name="a", backend="posix", options=PosixVolumeOptions(root=tmp_path))
        ]
    )
    volumes = Volumes.from_config(config)
    assert isinstance(volumes.get("a"), PosixBackend)
