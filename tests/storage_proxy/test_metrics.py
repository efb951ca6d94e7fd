"""`GET /metrics` of a real storage proxy process: upload and download bytes, active uploads,
request latency and volume usage follow real requests; the endpoint is on the internal API only
and needs no cluster secret; every documented family is exported."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from storage_proxy.contract import CLUSTER_SECRET_HEADER, mint_token
from tests.live import free_port
from tests.prometheus import families, value

SECRET = "metrics-test-secret-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True)
class Running:
    internal: str
    public: str
    root: Path


def documented(section: str) -> list[str]:
    text = (REPO / "docs" / "operations.md").read_text()
    part = text.split(f"### {section}", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(berth_[a-z_]+)` \|", part, flags=re.M)


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Running]:
    internal, public = free_port(), free_port()
    root = tmp_path / "vol"
    root.mkdir()
    config = tmp_path / "storage.toml"
    config.write_text(
        f"internal_port = {internal}\npublic_port = {public}\n"
        f'cluster_secret = "{SECRET}"\ntoken_secret = "{SECRET}"\n'
        f'[[volumes]]\nname = "v"\nbackend = "posix"\n[volumes.options]\nroot = "{root}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_STORAGE")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "storage_proxy", str(config), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    running = Running(f"http://127.0.0.1:{internal}", f"http://127.0.0.1:{public}", root)
    try:
        async with aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while True:
                assert proc.returncode is None, "the proxy exited during start-up"
                try:
                    async with http.get(f"{running.internal}/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert loop.time() < deadline, "the proxy did not start"
                await asyncio.sleep(0.05)
        yield running
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), timeout=20)


async def scrape(http: aiohttp.ClientSession, proxy: Running) -> str:
    async with http.get(f"{proxy.internal}/metrics") as resp:  # no cluster secret
        assert resp.status == 200
        return await resp.text()


def auth(fid: str, op: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, volume='v', folder_id=fid, op=op)}"}


async def test_proxy_metrics_follow_uploads_and_downloads(proxy: Running) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with aiohttp.ClientSession() as http:
        before = await scrape(http, proxy)
        declared = families(before)
        for name in documented("Storage proxy"):
            assert name.removesuffix("_total") in declared, f"{name} not exported"
        st = os.statvfs(proxy.root)
        assert value(before, "berth_storage_volume_capacity_bytes", volume="v") == (
            st.f_blocks * st.f_frsize
        )
        assert value(before, "berth_storage_volume_used_bytes", volume="v") > 0
        assert value(before, "berth_storage_uploaded_bytes_total") == 0
        async with http.get(f"{proxy.public}/metrics") as resp:
            assert resp.status == 404, "never on the public API"

        fid = uuid.uuid4().hex
        async with http.post(
            f"{proxy.internal}/v1/folders",
            json={"volume": "v", "folder_id": fid},
            headers={CLUSTER_SECRET_HEADER: SECRET},
        ) as resp:
            assert resp.status == 201
        meta = "path " + base64.b64encode(b"big.bin").decode()
        async with http.post(
            f"{proxy.public}/v1/upload",
            headers={**TUS, **auth(fid, "upload"), "Upload-Length": str(len(data)),
                     "Upload-Metadata": meta},
        ) as resp:  # fmt: skip
            assert resp.status == 201
            location = proxy.public + resp.headers["Location"]

        # One PATCH whose body arrives in two parts: the upload is active in between.
        release = asyncio.Event()
        half = len(data) // 2

        async def body() -> AsyncIterator[bytes]:
            yield data[:half]
            await release.wait()
            yield data[half:]

        headers = {**TUS, **auth(fid, "upload"), "Upload-Offset": "0",
                   "Content-Type": "application/offset+octet-stream"}  # fmt: skip
        patching = asyncio.create_task(http.patch(location, data=body(), headers=headers))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while value(await scrape(http, proxy), "berth_storage_active_uploads") != 1:
            assert loop.time() < deadline, "the upload never showed as active"
            await asyncio.sleep(0.02)
        release.set()
        async with await patching as resp:
            assert resp.status == 204
        after_upload = await scrape(http, proxy)
        assert value(after_upload, "berth_storage_active_uploads") == 0
        assert value(after_upload, "berth_storage_uploaded_bytes_total") == len(data)
        patches = value(
            after_upload,
            "berth_storage_http_request_duration_seconds_count",
            api="public", method="PATCH", route="/v1/upload/{upload_id}", status="204",
        )  # fmt: skip
        assert patches == 1

        download = f"{proxy.public}/v1/download"
        params = {"path": "big.bin"}
        async with http.get(download, params=params, headers=auth(fid, "download")) as resp:
            assert resp.status == 200 and await resp.read() == data
        after_download = await scrape(http, proxy)
        assert value(after_download, "berth_storage_downloaded_bytes_total") == len(data)

        async with http.get(
            f"{proxy.public}/v1/archive", params={"path": ""}, headers=auth(fid, "archive")
        ) as resp:
            assert resp.status == 200
            tar = await resp.read()
        after_archive = await scrape(http, proxy)
        assert value(after_archive, "berth_storage_downloaded_bytes_total") == len(data) + len(tar)
        internal_calls = value(
            after_archive, "berth_storage_http_request_duration_seconds_count", api="internal"
        )
        assert internal_calls >= 1  # the folder creation
