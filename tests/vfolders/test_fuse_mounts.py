"""The agent's FUSE mounts of S3 folders (agent/fuse_mounts.py) against real SeaweedFS: mount per
container, bytes shared with the S3 side both ways, release and the restart sweep."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent.contract import MountMode, MountSpec
from agent.errors import BadMount
from agent.fuse_mounts import FuseMounts
from storage_proxy.fuse import is_mounted
from tests.factories import World, unique
from tests.vfolders.conftest import download, upload

V = "/api/v1/vfolders"


async def _s3_folder(vapi: Any, world: World) -> tuple[Any, dict[str, Any]]:
    alice = await world.actor(await world.domain())
    resp = await vapi.post(
        V, json={"name": unique("s3"), "volume": "objects"}, headers=alice.headers
    )
    assert resp.status == 201, await resp.json()
    return alice, await resp.json()


async def _token(vapi: Any, actor: Any, folder_id: str, op: str) -> dict[str, Any]:
    resp = await vapi.post(f"{V}/{folder_id}/token", json={"op": op}, headers=actor.headers)
    assert resp.status == 200, await resp.json()
    return dict(await resp.json())


async def _fuse_spec(vf_config: Any, folder: dict[str, Any]) -> dict[str, str]:
    import uuid

    import aiohttp

    from manager.clients.storage import StorageProxyClient
    from tests.vfolders.conftest import CLUSTER_SECRET

    async with aiohttp.ClientSession() as http:
        client = StorageProxyClient(vf_config.storage_proxy_url, CLUSTER_SECRET, http)
        info = await client.mount_info("objects", uuid.UUID(folder["id"]).hex)
    assert info.kind == "fuse" and info.fuse is not None
    return info.fuse.model_dump(mode="json")


async def _wait_listed(vapi: Any, actor: Any, folder_id: str, name: str) -> None:
    """Writes through FUSE reach the filer asynchronously: poll with a deadline."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        resp = await vapi.get(f"{V}/{folder_id}/files", headers=actor.headers)
        names = [e["name"] for e in (await resp.json())["entries"]]
        if name in names:
            return
        assert asyncio.get_running_loop().time() < deadline, names
        await asyncio.sleep(0.2)


async def test_a_container_mount_sees_s3_bytes_and_writes_back(
    vapi: Any, world: World, vf_config: Any, tmp_path: Path
) -> None:
    alice, folder = await _s3_folder(vapi, world)
    tok = await _token(vapi, alice, folder["id"], "upload")
    await upload(tok["url"], tok["token"], "in.txt", b"from s3")
    spec = await _fuse_spec(vf_config, folder)
    mounts = FuseMounts(tmp_path / "fuse")
    wanted = [
        MountSpec(host_path="/ignored", container_path="/data", mode=MountMode.RW, fuse=spec),
        MountSpec(host_path=str(tmp_path), container_path="/plain", mode=MountMode.RO),
    ]
    planned = mounts.plan("c1", wanted)
    point = tmp_path / "fuse" / "c1" / "0"
    assert [m.host_path for m in planned] == [str(point), str(tmp_path)]
    try:
        await mounts.mount("c1", wanted, user="1000:1000")
        assert is_mounted(point)
        assert (point / "in.txt").read_bytes() == b"from s3"
        (point / "out.txt").write_bytes(b"from the node")
        await _wait_listed(vapi, alice, folder["id"], "out.txt")
        down = await _token(vapi, alice, folder["id"], "download")
        got = await download(down["url"], down["token"], "out.txt")
        assert got.content == b"from the node"
        assert (point / "out.txt").stat().st_uid == 1000  # mapped to the container user
        await mounts.mount("c1", wanted, user="1000:1000")  # idempotent
    finally:
        await mounts.release("c1")
    assert not is_mounted(point)
    assert not (tmp_path / "fuse" / "c1").exists()
    await mounts.release("c1")  # idempotent


async def test_the_sweep_releases_mounts_of_containers_that_are_gone(
    vapi: Any, world: World, vf_config: Any, tmp_path: Path
) -> None:
    _, folder = await _s3_folder(vapi, world)
    spec = await _fuse_spec(vf_config, folder)
    wanted = [MountSpec(host_path="/x", container_path="/d", fuse=spec)]
    first = FuseMounts(tmp_path / "fuse")
    for cid in ("gone", "kept"):
        first.plan(cid, wanted)
        await first.mount(cid, wanted, user=None)
    # A restarted agent knows nothing in memory; it works from the paths.
    restarted = FuseMounts(tmp_path / "fuse")
    try:
        await restarted.release_all_but({"kept"})
        assert not (tmp_path / "fuse" / "gone").exists()
        assert is_mounted(tmp_path / "fuse" / "kept" / "0")
    finally:
        await restarted.release("kept")
    assert not (tmp_path / "fuse" / "kept").exists()


def test_plain_mounts_cannot_reach_into_the_fuse_area_and_specs_are_checked(
    tmp_path: Path,
) -> None:
    mounts = FuseMounts(tmp_path / "fuse")
    with pytest.raises(BadMount, match="FUSE mount area"):
        mounts.plan(
            "c", [MountSpec(host_path=str(tmp_path / "fuse" / "other" / "0"), container_path="/x")]
        )
    with pytest.raises(BadMount, match="bad FUSE spec"):
        mounts.plan("c", [MountSpec(host_path="/x", container_path="/x", fuse={"filer": "a"})])
