"""Internal API through the manager's StorageProxyClient, against real posix and S3 volumes."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from manager.clients.storage import CONNECTION_ERROR, StorageError, StorageProxyClient
from storage_proxy.contract import CLUSTER_SECRET_HEADER, FileKind
from tests.storage_proxy.conftest import CLUSTER_SECRET, Proxy


@pytest.fixture
async def client(proxy: Proxy) -> StorageProxyClient:
    return StorageProxyClient(
        str(proxy.internal.make_url("")), CLUSTER_SECRET, proxy.internal.session
    )


class TestInternalApi:
    async def test_info_tells_the_public_url_and_volumes(self, client: StorageProxyClient) -> None:
        info = await client.info()
        assert info.public_url == "https://files.example.test"
        assert {(v.name, tuple(v.capabilities)) for v in info.volumes} == {
            ("local", ("quota",)),
            ("objects", ("quota",)),
        }

    @pytest.mark.parametrize("volume", ["local", "objects"])
    async def test_folder_lifecycle(self, client: StorageProxyClient, volume: str) -> None:
        fid = uuid.uuid4().hex
        created = await client.create_folder(volume, fid, quota_bytes=1000)
        assert created.quota_bytes == 1000
        await client.mkdir(volume, fid, "a/b", parents=True)
        await client.mkdir(volume, fid, "c")
        await client.move(volume, fid, src="c", dst="a/c")
        entries = await client.list_files(volume, fid, "a")
        assert [(e.name, e.kind) for e in entries] == [
            ("b", FileKind.DIRECTORY),
            ("c", FileKind.DIRECTORY),
        ]
        await client.delete_files(volume, fid, ["a"], recursive=True)
        assert await client.list_files(volume, fid) == []
        usage = await client.set_quota(volume, fid, 5000)
        assert (usage.quota_bytes, usage.used_bytes) == (5000, 0)
        assert (await client.usage(volume, fid)).quota_bytes == 5000
        await client.delete_folder(volume, fid)
        await client.delete_folder(volume, fid)
        with pytest.raises(StorageError) as err:
            await client.usage(volume, fid)
        assert (err.value.code, err.value.status) == ("folder_not_found", 404)

    async def test_mount_info_for_posix_is_a_bind_path(
        self, client: StorageProxyClient, proxy: Proxy
    ) -> None:
        fid = uuid.uuid4().hex
        await client.create_folder("local", fid)
        info = await client.mount_info("local", fid)
        assert (info.kind, info.host_path) == ("bind", str(proxy.posix_root / fid))

    async def test_mount_info_for_s3_names_the_fuse_source(
        self, client: StorageProxyClient
    ) -> None:
        fid = uuid.uuid4().hex
        await client.create_folder("objects", fid)
        info = await client.mount_info("objects", fid)
        assert info.kind == "fuse" and info.fuse is not None
        assert info.fuse.filer_path.endswith(f"/{fid}") and info.host_path.endswith(f"/{fid}")

    async def test_errors_carry_stable_codes(self, client: StorageProxyClient) -> None:
        fid = uuid.uuid4().hex
        with pytest.raises(StorageError) as err:
            await client.create_folder("nope", fid)
        assert (err.value.code, err.value.status) == ("volume_not_found", 404)
        await client.create_folder("local", fid)
        with pytest.raises(StorageError) as err:
            await client.list_files("local", fid, "../../etc")
        assert (err.value.code, err.value.status) == ("invalid_path", 400)
        with pytest.raises(StorageError) as err:
            await client.move("local", fid, src="missing", dst="x")
        assert err.value.code == "file_not_found"

    async def test_wrong_or_missing_secret_is_401(self, proxy: Proxy) -> None:
        wrong = StorageProxyClient(
            str(proxy.internal.make_url("")), "nope", proxy.internal.session
        )
        with pytest.raises(StorageError) as err:
            await wrong.info()
        assert (err.value.code, err.value.status) == ("unauthorized", 401)
        resp = await proxy.internal.get("/v1/info")
        body = await resp.json()
        assert resp.status == 401 and body["code"] == "unauthorized" and body["request_id"]
        resp = await proxy.internal.get("/health")
        assert resp.status == 200

    async def test_malformed_bodies_are_400_not_500(self, proxy: Proxy) -> None:
        headers = {CLUSTER_SECRET_HEADER: CLUSTER_SECRET}
        for body in (
            b"{",
            b"[]",
            b'{"volume": "local"}',
            b'{"volume":"local","folder_id":"../x"}',
        ):
            resp = await proxy.internal.post("/v1/folders", data=body, headers=headers)
            assert resp.status == 400, body
            assert (await resp.json())["code"] == "bad_request"
        resp = await proxy.internal.get("/v1/nowhere", headers=headers)
        assert resp.status == 404 and (await resp.json())["code"] == "not_found"

    async def test_unreachable_proxy_is_a_typed_error(self) -> None:
        async with aiohttp.ClientSession() as http:
            client = StorageProxyClient("http://127.0.0.1:9", CLUSTER_SECRET, http, timeout_s=2)
            with pytest.raises(StorageError) as err:
                await client.info()
            assert err.value.code == CONNECTION_ERROR and err.value.status is None
            assert await client.health() is False
