"""Folders mounted into real containers: manager + agent on the Docker engine + storage proxy.
A container reads a file uploaded through the proxy, writes to its rw mount, cannot write to a ro
mount, and sees a change made while it runs; on a posix volume (bind mount) and on S3 (FUSE
mount on the node, released when the container goes)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Stack, dump_logs, wait_for
from tests.factories import unique
from tests.vfolders.conftest import download, upload

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "berth/busybox:test"
SCRIPT = """
set -e
grep -q 'hello from upload' /mnt/rw/hello.txt
grep -q 'hello from upload' /mnt/ro/hello.txt
echo from-container > /mnt/rw/result.txt
if echo nope > /mnt/ro/nope.txt; then exit 3; fi
i=0
while [ ! -e /mnt/rw/go ]; do i=$((i+1)); [ $i -lt 600 ] || exit 4; sleep 0.1; done
exit 0
"""


@pytest.mark.parametrize("volume", ["local", "objects"])
async def test_a_session_reads_writes_and_is_refused_on_ro(vstack: Stack, volume: str) -> None:
    async with vstack.client() as api:
        await wait_for(api, "/api/v1/agents", lambda p: len(p["items"]) == 1)
        name = unique("data")
        created = await api.post("/api/v1/vfolders", json={"name": name, "volume": volume})
        assert created.status_code == 201, created.text
        folder = created.json()
        tok = await api.post(f"/api/v1/vfolders/{folder['id']}/token", json={"op": "upload"})
        await upload(tok.json()["url"], tok.json()["token"], "hello.txt", b"hello from upload\n")
        resp = await api.post(
            "/api/v1/sessions",
            json={
                "image": IMAGE,
                "type": "batch",
                "command": ["sh", "-c", SCRIPT],
                "resources": {"cpu": "0.5", "mem": "64m"},
                "mounts": [
                    {"folder": folder["id"], "path": "/mnt/rw", "mode": "rw"},
                    {"folder": name, "path": "/mnt/ro", "mode": "ro"},
                ],
            },
        )
        assert resp.status_code == 201, resp.text
        session = resp.json()
        assert [(m["name"], m["container_path"], m["mode"]) for m in session["mounts"]] == [
            (name, "/mnt/rw", "rw"),
            (name, "/mnt/ro", "ro"),
        ]
        assert all("host_path" not in m and "fuse" not in m for m in session["mounts"])

        busy = await api.delete(f"/api/v1/vfolders/{folder['id']}")
        assert (busy.status_code, busy.json()["code"]) == (409, "vfolder_in_use")

        await wait_for(api, f"/api/v1/sessions/{session['id']}", _running_or_done)
        await _wait_for_file(api, folder["id"], "result.txt", vstack)
        # S3 folders are FUSE-mounted on the node (one mount per container mount); posix
        # folders are bound directly.
        assert len(await _fuse_mounts_under(vstack)) == (2 if volume == "objects" else 0)
        # The container is waiting for this: it sees changes made while it runs.
        mk = await api.post(f"/api/v1/vfolders/{folder['id']}/files/mkdir", json={"path": "go"})
        assert mk.status_code == 204, mk.text

        try:
            done = await wait_for(
                api,
                f"/api/v1/sessions/{session['id']}",
                lambda s: s["status"] in ("terminated", "error", "cancelled"),
                timeout_s=90,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{dump_logs(vstack)}") from None
        logs = (await api.get(f"/api/v1/sessions/{session['id']}/logs")).text
        assert (done["status"], done["result"], done["exit_code"]) == (
            "terminated",
            "success",
            0,
        ), f"{done}\n{logs}\n{dump_logs(vstack)}"
        assert "Read-only file system" in logs

        down = await api.post(f"/api/v1/vfolders/{folder['id']}/token", json={"op": "download"})
        got = await download(down.json()["url"], down.json()["token"], "result.txt")
        assert got.content == b"from-container\n"
        listed = await api.get(f"/api/v1/vfolders/{folder['id']}/files")
        assert "nope.txt" not in [e["name"] for e in listed.json()["entries"]]

    await _wait_no_fuse_mounts(vstack)
    async with vstack.client() as api:
        assert (await api.delete(f"/api/v1/vfolders/{folder['id']}")).status_code == 204


async def _fuse_mounts_under(stack: Stack) -> list[str]:
    fuse_root = str(stack.workdir / "scratch" / "fuse")
    table = await asyncio.to_thread(Path("/proc/self/mountinfo").read_text)
    return [line for line in table.splitlines() if fuse_root in line and "fuse" in line]


def _running_or_done(s: dict[str, Any]) -> bool:
    return bool(s["status"] in ("running", "terminated", "error", "cancelled"))


async def _wait_for_file(api: Any, folder_id: str, name: str, stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        resp = await api.get(f"/api/v1/vfolders/{folder_id}/files")
        if name in [e["name"] for e in resp.json()["entries"]]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{name} never appeared\n{dump_logs(stack)}")


async def _wait_no_fuse_mounts(stack: Stack) -> None:
    """The agent unmounts a container's FUSE folders when it destroys the container."""
    fuse_root = stack.workdir / "scratch" / "fuse"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while loop.time() < deadline:
        mounted = await _fuse_mounts_under(stack)
        leftovers = list(fuse_root.iterdir()) if fuse_root.exists() else []
        if not mounted and not leftovers:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"FUSE mounts left behind: {mounted} {leftovers}\n{dump_logs(stack)}")
