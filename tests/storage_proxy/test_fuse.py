"""S3 folders reach containers through a FUSE mount on the node (`weed mount`): real mounts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_proxy.backends.s3 import S3Backend
from storage_proxy.contract import FuseMountSpec
from storage_proxy.fuse import FuseError, FuseMount, is_mounted, mount_folder, unmount
from tests.storage_proxy.conftest import S3Server

CONTAINER_UID = 1000


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _eventually(check, timeout_s: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


class TestS3FuseMount:
    async def test_folder_mounted_for_a_non_root_user_reads_and_writes(
        self, s3_backend: S3Backend, s3_server: S3Server
    ) -> None:
        folder_id = uuid.uuid4().hex
        await s3_backend.create_folder(folder_id)
        folder = await s3_backend.folder(folder_id)
        state = await folder.create_upload("data/in.txt", length=5, metadata={})
        await folder.write_upload(state.upload_id, offset=0, chunks=_chunks(b"input"))

        info = await s3_backend.mount_info(folder_id)
        assert info.kind == "fuse" and info.fuse is not None
        host_path = Path(info.host_path)
        mount = await mount_folder(
            info.fuse, host_path, uid=CONTAINER_UID, gid=CONTAINER_UID, weed_binary=s3_server.weed
        )
        try:
            assert is_mounted(host_path)
            again = await mount_folder(info.fuse, host_path, weed_binary=s3_server.weed)
            assert again.pid == 0  # already mounted: not mounted twice

            async def read_back() -> None:
                assert (host_path / "data" / "in.txt").read_bytes() == b"input"

            await _eventually(read_back)
            assert (host_path / "data" / "in.txt").stat().st_uid == CONTAINER_UID

            # Write as the container user would, then find the bytes through the S3 API.
            out = host_path / "data" / "out.txt"
            await asyncio.to_thread(
                subprocess.run,
                ["/bin/sh", "-c", f"echo written-by-user > {out}"],
                user=CONTAINER_UID,
                group=CONTAINER_UID,
                extra_groups=[],
                check=True,
            )

            async def in_bucket() -> None:
                body = b"".join([c async for c in folder.read("data/out.txt")])
                assert body == b"written-by-user\n"

            await _eventually(in_bucket)
        finally:
            await unmount(mount)
        assert not is_mounted(host_path)
        assert not _alive(mount.pid)
        await unmount(mount)  # idempotent

    async def test_mount_failure_is_reported_and_leaves_no_process(
        self, tmp_path: Path, s3_server: S3Server
    ) -> None:
        spec = FuseMountSpec(filer="127.0.0.1:1", filer_path="/nowhere")
        with pytest.raises(FuseError):
            await mount_folder(spec, tmp_path / "m", weed_binary=s3_server.weed, timeout_s=3)
        assert not is_mounted(tmp_path / "m")

    async def test_unmount_of_a_plain_directory_is_a_no_op(self, tmp_path: Path) -> None:
        await unmount(FuseMount(mountpoint=tmp_path, pid=0, log_path=tmp_path / "log"))
        assert await asyncio.to_thread(tmp_path.is_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
