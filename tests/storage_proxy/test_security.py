"""Bad input and hostile requests: every one is refused with a stable code and touches nothing
outside the folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage_proxy.contract import mint_token
from tests.storage_proxy.conftest import Proxy
from tests.storage_proxy.test_public_api import (
    create_upload,
    download,
    meta,
    new_folder,
    upload_file,
)

TRAVERSALS = [
    "../outside.txt",
    "a/../../outside.txt",
    "/etc/passwd",
    "..",
    "\\etc\\passwd",
]


@pytest.fixture
def outside(proxy: Proxy) -> Path:
    """A file beside the folders that no request may reach."""
    path = proxy.posix_root.parent / "outside.txt"
    path.write_text("secret")
    return path


def _text(path: Path) -> str:
    return path.read_text()


def assert_error(status: int, body: dict, expected_status: int, code: str) -> None:
    assert (status, body["code"]) == (expected_status, code), body
    assert body["message"] and body["request_id"]


class TestPathTraversal:
    @pytest.mark.parametrize("path", TRAVERSALS)
    async def test_download_outside_the_folder_is_refused(
        self, proxy: Proxy, outside: Path, path: str
    ) -> None:
        fid = await new_folder(proxy)
        resp = await proxy.public.get(
            "/v1/download", params={"path": path}, headers=proxy.auth(fid, "download")
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")

    async def test_url_encoded_dot_dot_is_decoded_then_refused(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        token = proxy.token(fid, "download")
        for raw in ("%2e%2e%2foutside.txt", "%2E%2E/outside.txt", "a%2F..%2F..%2Foutside.txt"):
            resp = await proxy.public.get(f"/v1/download?path={raw}&token={token}")
            assert_error(resp.status, await resp.json(), 400, "invalid_path")

    @pytest.mark.parametrize("path", TRAVERSALS)
    async def test_upload_outside_the_folder_is_refused(
        self, proxy: Proxy, outside: Path, path: str
    ) -> None:
        fid = await new_folder(proxy)
        resp = await proxy.public.post(
            "/v1/upload",
            headers={
                **proxy.auth(fid, "upload"),
                "Upload-Length": "3",
                "Upload-Metadata": meta(path=path),
            },
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")
        assert _text(outside) == "secret"

    async def test_move_and_delete_outside_are_refused(self, proxy: Proxy, outside: Path) -> None:
        fid = await new_folder(proxy)
        await upload_file(proxy, fid, "in.txt", b"in")
        resp = await proxy.public.post(
            "/v1/move",
            json={"src": "in.txt", "dst": "../moved.txt"},
            headers=proxy.auth(fid, "move"),
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")
        resp = await proxy.public.post(
            "/v1/delete", json={"paths": ["../outside.txt"]}, headers=proxy.auth(fid, "delete")
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")
        assert _text(outside) == "secret"
        assert (proxy.posix_root / fid / "in.txt").read_bytes() == b"in"

    @pytest.mark.parametrize("name", ["bad\x01name", "tab\there", "new\nline", "del\x7f"])
    async def test_names_with_control_characters_are_refused(
        self, proxy: Proxy, name: str
    ) -> None:
        fid = await new_folder(proxy)
        resp = await proxy.public.post(
            "/v1/upload",
            headers={
                **proxy.auth(fid, "upload"),
                "Upload-Length": "1",
                "Upload-Metadata": meta(path=name),
            },
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")
        resp = await proxy.public.post(
            "/v1/mkdir", json={"path": name}, headers=proxy.auth(fid, "mkdir")
        )
        assert_error(resp.status, await resp.json(), 400, "invalid_path")
        assert list((proxy.posix_root / fid).iterdir()) == []


class TestSymlinks:
    async def test_symlinks_pointing_outside_are_never_followed(
        self, proxy: Proxy, outside: Path
    ) -> None:
        fid = await new_folder(proxy)
        folder = proxy.posix_root / fid
        (folder / "file_link").symlink_to(outside)
        (folder / "dir_link").symlink_to(outside.parent)
        status, body, _ = await download(proxy, fid, "file_link")
        assert status == 403 and b"symlink_refused" in body
        status, body, _ = await download(proxy, fid, "dir_link/outside.txt")
        assert status == 403 and b"symlink_refused" in body
        resp = await proxy.public.get(
            "/v1/files", params={"path": "dir_link"}, headers=proxy.auth(fid, "list")
        )
        assert_error(resp.status, await resp.json(), 403, "symlink_refused")
        # Listing shows the link as a link, without its target's contents.
        resp = await proxy.public.get("/v1/files", headers=proxy.auth(fid, "list"))
        kinds = {e["name"]: e["kind"] for e in (await resp.json())["entries"]}
        assert kinds == {"file_link": "symlink", "dir_link": "symlink"}

    async def test_uploads_through_a_symlinked_directory_are_refused(
        self, proxy: Proxy, outside: Path
    ) -> None:
        fid = await new_folder(proxy)
        (proxy.posix_root / fid / "dir_link").symlink_to(outside.parent)
        resp = await proxy.public.post(
            "/v1/upload",
            headers={
                **proxy.auth(fid, "upload"),
                "Upload-Length": "3",
                "Upload-Metadata": meta(path="dir_link/outside.txt"),
            },
        )
        assert_error(resp.status, await resp.json(), 403, "symlink_refused")
        resp = await proxy.public.post(
            "/v1/mkdir", json={"path": "dir_link/new"}, headers=proxy.auth(fid, "mkdir")
        )
        assert_error(resp.status, await resp.json(), 403, "symlink_refused")
        assert _text(outside) == "secret"
        assert not (outside.parent / "new").exists()

    async def test_deleting_a_symlink_removes_the_link_not_its_target(
        self, proxy: Proxy, outside: Path
    ) -> None:
        fid = await new_folder(proxy)
        (proxy.posix_root / fid / "dir_link").symlink_to(outside.parent)
        resp = await proxy.public.post(
            "/v1/delete",
            json={"paths": ["dir_link"], "recursive": True},
            headers=proxy.auth(fid, "delete"),
        )
        assert resp.status == 204
        assert _text(outside) == "secret"
        assert not (proxy.posix_root / fid / "dir_link").is_symlink()


class TestTokens:
    async def test_missing_garbage_and_foreign_tokens_are_401(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        resp = await proxy.public.get("/v1/files")
        assert_error(resp.status, await resp.json(), 401, "token_missing")
        resp = await proxy.public.get("/v1/files", headers={"Authorization": "Bearer nonsense"})
        assert_error(resp.status, await resp.json(), 401, "token_invalid")
        forged = mint_token(
            "another-secret-of-enough-length-0123456789", volume="local", folder_id=fid, op="list"
        )
        resp = await proxy.public.get("/v1/files", params={"token": forged})
        assert_error(resp.status, await resp.json(), 401, "token_invalid")

    async def test_expired_token_is_401(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        stale = proxy.token(fid, "list", ttl_s=10, now=time.time() - 60)
        resp = await proxy.public.get("/v1/files", params={"token": stale})
        assert_error(resp.status, await resp.json(), 401, "token_expired")

    async def test_token_for_another_operation_is_403(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        await upload_file(proxy, fid, "f", b"f")
        resp = await proxy.public.get(
            "/v1/download", params={"path": "f"}, headers=proxy.auth(fid, "list")
        )
        assert_error(resp.status, await resp.json(), 403, "token_scope")
        resp = await proxy.public.post(
            "/v1/delete", json={"paths": ["f"]}, headers=proxy.auth(fid, "download")
        )
        assert_error(resp.status, await resp.json(), 403, "token_scope")
        assert (proxy.posix_root / fid / "f").exists()

    async def test_token_for_another_folder_reaches_nothing_of_this_one(
        self, proxy: Proxy
    ) -> None:
        mine = await new_folder(proxy)
        theirs = await new_folder(proxy)
        await upload_file(proxy, theirs, "private.txt", b"theirs")
        location = await create_upload(proxy, theirs, "pending.bin", 10)
        # My token names my folder: their file is simply not there, their upload unknown.
        status, body, _ = await download(proxy, mine, "private.txt")
        assert status == 404 and b"file_not_found" in body
        resp = await proxy.public.head(location, headers=proxy.auth(mine, "upload"))
        assert resp.status == 404
        resp = await proxy.public.patch(
            location,
            data=b"x" * 10,
            headers={
                **proxy.auth(mine, "upload"),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert_error(resp.status, await resp.json(), 404, "upload_not_found")

    async def test_paths_outside_the_token_prefix_are_403(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        await upload_file(proxy, fid, "shared/ok.txt", b"ok")
        await upload_file(proxy, fid, "shared-not/secret.txt", b"no")
        await upload_file(proxy, fid, "private.txt", b"no")
        ok = proxy.auth(fid, "download", path="shared")
        status, body, _ = await download(proxy, fid, "shared/ok.txt", **ok)
        assert (status, body) == (200, b"ok")
        for path in ("private.txt", "shared-not/secret.txt", "shared/../private.txt"):
            resp = await proxy.public.get("/v1/download", params={"path": path}, headers=ok)
            assert resp.status in (400, 403)
            assert (await resp.json())["code"] in ("token_scope", "invalid_path")
        resp = await proxy.public.post(
            "/v1/upload",
            headers={
                **proxy.auth(fid, "upload", path="shared"),
                "Upload-Length": "1",
                "Upload-Metadata": meta(path="elsewhere.txt"),
            },
        )
        assert_error(resp.status, await resp.json(), 403, "token_scope")
        resp = await proxy.public.post(
            "/v1/move",
            json={"src": "shared/ok.txt", "dst": "stolen.txt"},
            headers=proxy.auth(fid, "move", path="shared"),
        )
        assert_error(resp.status, await resp.json(), 403, "token_scope")


class TestErrorsAndCors:
    async def test_errors_are_json_with_cors_for_the_web_ui(self, proxy: Proxy) -> None:
        resp = await proxy.public.get("/v1/files", headers={"Origin": "https://ui.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Upload-Offset" in resp.headers["Access-Control-Expose-Headers"]
        body = await resp.json()
        assert set(body) == {"code", "message", "request_id"}
        assert resp.headers["X-Request-Id"] == body["request_id"]

    async def test_unknown_routes_and_methods_are_json(self, proxy: Proxy) -> None:
        resp = await proxy.public.get("/nowhere")
        assert_error(resp.status, await resp.json(), 404, "not_found")
        resp = await proxy.public.put("/v1/download")
        assert_error(resp.status, await resp.json(), 405, "method_not_allowed")

    async def test_malformed_json_bodies_are_400(self, proxy: Proxy) -> None:
        fid = await new_folder(proxy)
        for body in (b"{", b"[]", b'{"path": 5}', b'{"src": "a"}'):
            resp = await proxy.public.post("/v1/move", data=body, headers=proxy.auth(fid, "move"))
            assert_error(resp.status, await resp.json(), 400, "bad_request")
