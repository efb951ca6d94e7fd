"""Public API: tus uploads, ranged and archive downloads, file operations, tokens, CORS."""

from __future__ import annotations

import asyncio
import base64
import io
import tarfile
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from storage_proxy.contract import CLUSTER_SECRET_HEADER
from tests.storage_proxy.conftest import CLUSTER_SECRET, Proxy

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


async def new_folder(proxy: Proxy, volume: str = "local", quota_bytes: int | None = None) -> str:
    fid = uuid.uuid4().hex
    resp = await proxy.internal.post(
        "/v1/folders",
        json={"volume": volume, "folder_id": fid, "quota_bytes": quota_bytes},
        headers={CLUSTER_SECRET_HEADER: CLUSTER_SECRET},
    )
    assert resp.status == 201, await resp.text()
    return fid


async def create_upload(
    proxy: Proxy, fid: str, path: str, length: int, *, volume: str = "local"
) -> str:
    resp = await proxy.public.post(
        "/v1/upload",
        headers={
            **TUS,
            **proxy.auth(fid, "upload", volume=volume),
            "Upload-Length": str(length),
            "Upload-Metadata": meta(path=path),
        },
    )
    assert resp.status == 201, await resp.text()
    return resp.headers["Location"]


async def patch(
    proxy: Proxy, fid: str, location: str, offset: int, body: bytes, *, volume: str = "local"
) -> tuple[int, dict[str, str]]:
    resp = await proxy.public.patch(
        location,
        data=body,
        headers={
            **TUS,
            **PATCH_TYPE,
            **proxy.auth(fid, "upload", volume=volume),
            "Upload-Offset": str(offset),
        },
    )
    return resp.status, (await resp.json() if resp.status >= 400 else dict(resp.headers))


async def head_offset(proxy: Proxy, fid: str, location: str, *, volume: str = "local") -> int:
    resp = await proxy.public.head(
        location, headers={**TUS, **proxy.auth(fid, "upload", volume=volume)}
    )
    assert resp.status == 200
    return int(resp.headers["Upload-Offset"])


async def download(proxy: Proxy, fid: str, path: str, **headers: str) -> tuple[int, bytes, dict]:
    resp = await proxy.public.get(
        "/v1/download", params={"path": path}, headers={**proxy.auth(fid, "download"), **headers}
    )
    return resp.status, await resp.read(), dict(resp.headers)


async def upload_file(
    proxy: Proxy, fid: str, path: str, data: bytes, volume: str = "local"
) -> None:
    location = await create_upload(proxy, fid, path, len(data), volume=volume)
    if data:
        status, _ = await patch(proxy, fid, location, 0, data, volume=volume)
        assert status == 204


class TestTusUpload:
    @pytest.mark.parametrize("volume", ["local", "objects"])
    async def test_upload_in_chunks_then_download(self, proxy: Proxy, volume: str) -> None:
        fid = await new_folder(proxy, volume)
        data = bytes(range(256)) * 100
        location = await create_upload(proxy, fid, "dir/file.bin", len(data), volume=volume)
        assert await head_offset(proxy, fid, location, volume=volume) == 0
        status, headers = await patch(proxy, fid, location, 0, data[:10000], volume=volume)
        assert status == 204 and headers["Upload-Offset"] == "10000"
        listing = await proxy.public.get(
            "/v1/files", params={"path": ""}, headers=proxy.auth(fid, "list", volume=volume)
        )
        assert (await listing.json())["entries"] == []  # nothing visible before completion
        status, headers = await patch(proxy, fid, location, 10000, data[10000:], volume=volume)
        assert status == 204 and headers["Upload-Offset"] == str(len(data))
        resp = await proxy.public.get(
            "/v1/download",
            params={"path": "dir/file.bin"},
            headers=proxy.auth(fid, "download", volume=volume),
        )
        assert resp.status == 200 and await resp.read() == data

    async def test_options_advertises_tus_without_a_token(self, proxy: Proxy) -> None:
        resp = await proxy.public.options("/v1/upload", headers={"Origin": "https://ui.test"})
        assert resp.status == 204
        assert resp.headers["Tus-Version"] == "1.0.0"
        assert "creation" in resp.headers["Tus-Extension"]
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Upload-Offset" in resp.headers["Access-Control-Allow-Headers"]

    async def test_interrupted_upload_resumes_from_head_offset(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        data = b"0123456789" * 50_000
        location = await create_upload(proxy, fid, "resumed.bin", len(data))
        sent = 200_000
        # A raw connection that promises the whole body, sends part of it and drops.
        _reader, writer = await asyncio.open_connection(proxy.public.host, proxy.public.port)
        token = proxy.token(fid, "upload")
        head = (
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data[:sent])
        await writer.drain()
        # Wait until the proxy is writing this upload (it holds the upload's lock) ...
        deadline = time.monotonic() + 10
        while True:
            status, body = await patch(proxy, fid, location, 0, b"")
            if status == 409 and "another request" in body["message"]:
                break
            assert time.monotonic() < deadline, "the interrupted PATCH never started"
            await asyncio.sleep(0.02)
        # ... then drop the connection in the middle of the body.
        writer.close()
        await writer.wait_closed()
        deadline = time.monotonic() + 10
        while (offset := await head_offset(proxy, fid, location)) != sent:
            assert time.monotonic() < deadline, f"offset stuck at {offset}"
            await asyncio.sleep(0.05)
        status, _ = await patch(proxy, fid, location, offset, data[offset:])
        assert status == 204
        assert (await download(proxy, fid, "resumed.bin"))[1] == data

    @pytest.mark.parametrize("volume", ["local", "objects"])
    async def test_large_patch_body_is_stored_exactly(self, proxy: Proxy, volume: str) -> None:
        # Past SPLICE_MIN_BYTES: the posix volume splices it from the socket, S3 iterates it.
        fid = await new_folder(proxy, volume)
        data = bytes(range(256)) * (13 * 4096 + 7)
        await upload_file(proxy, fid, "large.bin", data, volume=volume)
        if volume == "local":
            assert (await download(proxy, fid, "large.bin"))[1] == data

    async def test_interrupted_large_upload_keeps_every_received_byte(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        data = bytes(range(251)) * 80_000  # 20 MB promised, 12 MB sent: the spliced path
        location = await create_upload(proxy, fid, "big.bin", len(data))
        sent = 12_000_000
        _reader, writer = await asyncio.open_connection(proxy.public.host, proxy.public.port)
        token = proxy.token(fid, "upload")
        head = (
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data[:sent])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        deadline = time.monotonic() + 10
        while (offset := await head_offset(proxy, fid, location)) != sent:
            assert time.monotonic() < deadline, f"offset stuck at {offset}"
            await asyncio.sleep(0.05)
        status, _ = await patch(proxy, fid, location, offset, data[offset:])
        assert status == 204
        assert (await download(proxy, fid, "big.bin"))[1] == data

    async def test_second_concurrent_writer_gets_409(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        location = await create_upload(proxy, fid, "race.bin", 20)
        release = asyncio.Event()
        started = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield b"a" * 5
            started.set()
            await release.wait()
            yield b"b" * 5

        first = asyncio.create_task(
            proxy.public.patch(
                location,
                data=slow_body(),
                headers={**TUS, **PATCH_TYPE, **proxy.auth(fid, "upload"), "Upload-Offset": "0"},
            )
        )
        await started.wait()
        deadline = time.monotonic() + 10
        while True:  # the first writer holds the upload once its body starts arriving
            status, body = await patch(proxy, fid, location, 0, b"c" * 10)
            assert status == 409 and body["code"] == "upload_offset_mismatch"
            if "another request" in body["message"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert "another request" in body["message"]
        release.set()
        resp = await first
        assert resp.status == 204 and resp.headers["Upload-Offset"] == "10"
        status, body = await patch(proxy, fid, location, 0, b"d" * 10)
        assert status == 409 and body["code"] == "upload_offset_mismatch"

    async def test_body_past_upload_length_is_refused(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        location = await create_upload(proxy, fid, "small.bin", 4)
        status, body = await patch(proxy, fid, location, 0, b"too long")
        assert status == 413 and body["code"] == "upload_too_large"
        assert (await download(proxy, fid, "small.bin"))[0] == 404

    async def test_patch_needs_the_tus_content_type_and_offset(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        location = await create_upload(proxy, fid, "x", 4)
        resp = await proxy.public.patch(
            location, data=b"abcd", headers={**proxy.auth(fid, "upload"), "Upload-Offset": "0"}
        )
        assert resp.status == 415 and (await resp.json())["code"] == "unsupported_media_type"
        resp = await proxy.public.patch(
            location, data=b"abcd", headers={**proxy.auth(fid, "upload"), **PATCH_TYPE}
        )
        assert resp.status == 400 and (await resp.json())["code"] == "bad_request"

    async def test_creation_needs_length_and_a_name(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        auth = proxy.auth(fid, "upload")
        resp = await proxy.public.post(
            "/v1/upload", headers={**auth, "Upload-Metadata": meta(path="a")}
        )
        assert resp.status == 400
        resp = await proxy.public.post("/v1/upload", headers={**auth, "Upload-Length": "3"})
        assert resp.status == 400 and "filename" in (await resp.json())["message"]
        resp = await proxy.public.post(
            "/v1/upload", headers={**auth, "Upload-Length": "3", "Upload-Metadata": "path !!!"}
        )
        assert resp.status == 400

    async def test_uploads_past_the_quota_are_refused(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy, quota_bytes=100)
        auth = proxy.auth(fid, "upload")
        resp = await proxy.public.post(
            "/v1/upload",
            headers={**auth, "Upload-Length": "101", "Upload-Metadata": meta(path="a")},
        )
        assert resp.status == 413 and (await resp.json())["code"] == "quota_exceeded"
        first = await create_upload(proxy, fid, "first", 60)
        # The unfinished first upload holds its 60 bytes, so 60 more do not fit.
        resp = await proxy.public.post(
            "/v1/upload",
            headers={**auth, "Upload-Length": "60", "Upload-Metadata": meta(path="b")},
        )
        assert resp.status == 413
        # A quota lowered mid-upload stops the next PATCH.
        resp = await proxy.internal.put(
            f"/v1/folders/local/{fid}/quota",
            json={"quota_bytes": 10},
            headers={CLUSTER_SECRET_HEADER: CLUSTER_SECRET},
        )
        assert resp.status == 200
        status, body = await patch(proxy, fid, first, 0, b"x" * 60)
        assert status == 413 and body["code"] == "quota_exceeded"

    async def test_termination_deletes_the_upload(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        location = await create_upload(proxy, fid, "t", 10)
        resp = await proxy.public.delete(location, headers=proxy.auth(fid, "upload"))
        assert resp.status == 204
        resp = await proxy.public.head(location, headers=proxy.auth(fid, "upload"))
        assert resp.status == 404


class TestDownloads:
    async def test_ranges(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        data = bytes(range(256))
        await upload_file(proxy, fid, "r.bin", data)
        status, body, headers = await download(proxy, fid, "r.bin")
        assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes")
        status, body, headers = await download(proxy, fid, "r.bin", Range="bytes=10-19")
        assert (status, body, headers["Content-Range"]) == (206, data[10:20], "bytes 10-19/256")
        status, body, _ = await download(proxy, fid, "r.bin", Range="bytes=-6")
        assert (status, body) == (206, data[-6:])
        status, body, _ = await download(proxy, fid, "r.bin", Range="bytes=250-")
        assert (status, body) == (206, data[250:])
        status, _, _ = await download(proxy, fid, "r.bin", Range="bytes=300-")
        assert status == 416
        status, body, _ = await download(proxy, fid, "r.bin", Range="bytes=1-2,5-6")
        assert (status, body) == (200, data)  # multi-range: the whole file

    async def test_archive_streams_a_directory_as_tar(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        await upload_file(proxy, fid, "proj/a.txt", b"alpha")
        await upload_file(proxy, fid, "proj/sub/b.bin", bytes(1000))
        await upload_file(proxy, fid, "other.txt", b"not included")
        (proxy.posix_root / fid / "proj" / "link").symlink_to("/etc/passwd")
        resp = await proxy.public.get(
            "/v1/archive", params={"path": "proj"}, headers=proxy.auth(fid, "archive")
        )
        assert resp.status == 200 and resp.content_type == "application/x-tar"
        with tarfile.open(fileobj=io.BytesIO(await resp.read())) as tar:
            names = sorted(tar.getnames())
            assert names == ["proj", "proj/a.txt", "proj/sub", "proj/sub/b.bin"]
            member = tar.extractfile("proj/a.txt")
            assert member is not None and member.read() == b"alpha"

    async def test_directory_download_is_refused(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        await upload_file(proxy, fid, "d/f", b"f")
        status, body, _ = await download(proxy, fid, "d")
        assert status == 409 and b"is_a_directory" in body


class TestFileOperations:
    async def test_list_mkdir_move_delete(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        resp = await proxy.public.post(
            "/v1/mkdir", json={"path": "a/b", "parents": True}, headers=proxy.auth(fid, "mkdir")
        )
        assert resp.status == 204
        await upload_file(proxy, fid, "a/b/f.txt", b"x")
        resp = await proxy.public.post(
            "/v1/move",
            json={"src": "a/b/f.txt", "dst": "a/g.txt"},
            headers=proxy.auth(fid, "move"),
        )
        assert resp.status == 204
        resp = await proxy.public.get(
            "/v1/files", params={"path": "a"}, headers=proxy.auth(fid, "list")
        )
        entries = (await resp.json())["entries"]
        assert [(e["name"], e["kind"]) for e in entries] == [("b", "directory"), ("g.txt", "file")]
        resp = await proxy.public.post(
            "/v1/delete",
            json={"paths": ["a"], "recursive": True},
            headers=proxy.auth(fid, "delete"),
        )
        assert resp.status == 204
        assert not (proxy.posix_root / fid / "a").exists()
