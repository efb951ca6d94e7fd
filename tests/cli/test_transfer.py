"""Resumable transfers (client/sdk/transfer.py) against the real storage proxy public API on a
posix volume: a tus upload cut off midway resumes from the proxy's offset, and a download cut
off midway continues with a Range request. Tokens are minted as the manager mints them."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from client.sdk import transfer
from client.sdk.errors import BerthAPIError
from storage_proxy.app import create_apps
from storage_proxy.config import PosixVolumeOptions, StorageProxyConfig, VolumeConfig
from storage_proxy.contract import CLUSTER_SECRET_HEADER, mint_token

CLUSTER = "cli-cluster-secret-0123456789abcdef"
TOKENS = "cli-token-secret-0123456789abcdef01"


@dataclass
class Proxy:
    public_url: str
    internal_url: str
    root: Path

    def grants(self, folder_id: str) -> transfer.TokenSource:
        async def grant(op: str) -> transfer.Grant:
            token = mint_token(TOKENS, volume="local", folder_id=folder_id, op=op)
            return transfer.Grant(url=self.public_url, token=token)

        return grant


@pytest.fixture
async def proxy(tmp_path: Path) -> AsyncIterator[Proxy]:
    root = tmp_path / "volume"
    root.mkdir()
    config = StorageProxyConfig(
        cluster_secret=SecretStr(CLUSTER),
        token_secret=SecretStr(TOKENS),
        public_url="http://127.0.0.1",
        volumes=[
            VolumeConfig(name="local", backend="posix", options=PosixVolumeOptions(root=root))
        ],
    )
    apps = create_apps(config)
    public, internal = (
        TestServer(apps.public, host="127.0.0.1"),
        TestServer(apps.internal, host="127.0.0.1"),
    )
    await public.start_server()
    await internal.start_server()
    try:
        yield Proxy(
            public_url=str(public.make_url("")).rstrip("/"),
            internal_url=str(internal.make_url("")).rstrip("/"),
            root=root,
        )
    finally:
        await public.close()
        await internal.close()


async def _folder(proxy: Proxy) -> str:
    import httpx

    fid = uuid.uuid4().hex
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            f"{proxy.internal_url}/v1/folders",
            json={"volume": "local", "folder_id": fid},
            headers={CLUSTER_SECRET_HEADER: CLUSTER},
        )
    assert resp.status_code == 201, resp.text
    return fid


class Cut(Exception):
    """Raised from a progress callback to cut a transfer off midway."""


async def test_an_interrupted_upload_resumes_and_the_download_matches(
    proxy: Proxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fid = await _folder(proxy)
    local = tmp_path / "data.bin"
    payload = os.urandom(300_000)
    local.write_bytes(payload)
    key = f"test|{fid}|data/blob.bin"

    seen: list[int] = []

    def cut_after_first_chunk(done: int, total: int) -> None:
        seen.append(done)
        if done >= 100_000:
            raise Cut

    with pytest.raises(Cut):
        await transfer.upload(
            proxy.grants(fid),
            key=key,
            local=local,
            remote="data/blob.bin",
            chunk_size=100_000,
            progress=cut_after_first_chunk,
        )
    assert list(transfer.state_dir().glob("*.json")), "the upload left its state to resume"

    resumed: list[int] = []
    stored = await transfer.upload(
        proxy.grants(fid),
        key=key,
        local=local,
        remote="data/blob.bin",
        chunk_size=100_000,
        progress=lambda done, total: resumed.append(done),
    )
    assert stored == len(payload)
    assert resumed[0] == 100_000, "the second run started at the proxy's offset, not at 0"
    assert not list(transfer.state_dir().glob("*.json"))

    target = tmp_path / "copy.bin"

    def cut_download(done: int, total: int | None) -> None:
        if done >= 1:
            raise Cut

    with pytest.raises(Cut):
        await transfer.download(
            proxy.grants(fid), remote="data/blob.bin", local=target, progress=cut_download
        )
    part = target.with_name("copy.bin.part")
    assert 0 < part.stat().st_size < len(payload)
    got = await transfer.download(proxy.grants(fid), remote="data/blob.bin", local=target)
    assert got == len(payload) and target.read_bytes() == payload
    assert not part.exists()


async def test_a_missing_file_is_an_api_error_and_leaves_local_files_alone(
    proxy: Proxy, tmp_path: Path
) -> None:
    fid = await _folder(proxy)
    local = tmp_path / "x.txt"
    local.write_text("keep me")
    with pytest.raises(BerthAPIError) as caught:
        await transfer.download(proxy.grants(fid), remote="missing.txt", local=local)
    assert caught.value.status == 404
    assert not caught.value.code.startswith("http_"), "the proxy's JSON error code is kept"
    assert local.read_text() == "keep me"
    assert not (tmp_path / "x.txt.part").exists()
