"""The virtual-folder API against the real storage proxy process: lifecycle, scoping, shares,
files, tokens (minted by the manager, used directly on the proxy), and crash-safe deletes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from manager.auth.principal import Principal
from manager.clients.storage import StorageProxyClient
from manager.config import ManagerConfig
from manager.db.models import (
    ProjectRole,
    SessionRow,
    UserRole,
    VFolderRow,
    VFolderStatus,
)
from manager.errors import Forbidden
from manager.lifecycle.session import SessionStatus, SessionType
from manager.metrics import ApiMetrics
from manager.reconcilers.context import LoopContext
from manager.services.vfolders import Storage, resolve_mounts, vfolder_cleanup_step
from tests.factories import Actor, World, unique
from tests.vfolders.conftest import (
    CLUSTER_SECRET,
    TOKEN_SECRET,
    ProxyProcess,
    download,
    upload,
)

V = "/api/v1/vfolders"


async def create(api: Any, actor: Actor, **body: Any) -> dict[str, Any]:
    resp = await api.post(V, json={"name": unique("f"), **body}, headers=actor.headers)
    data = await resp.json()
    assert resp.status == 201, data
    return dict(data)


async def token(
    api: Any, actor: Actor, folder_id: str, op: str, **extra: Any
) -> tuple[int, dict[str, Any]]:
    resp = await api.post(
        f"{V}/{folder_id}/token", json={"op": op, **extra}, headers=actor.headers
    )
    return resp.status, await resp.json()


def principal_of(actor: Actor, projects: dict[uuid.UUID, ProjectRole] | None = None) -> Principal:
    return Principal(
        user_id=actor.user.id,
        domain_id=actor.user.domain_id,
        role=actor.user.role,
        project_roles=projects or {},
    )


async def test_create_get_list_rename_and_delete(
    vapi: Any, world: World, storage_proxy: ProxyProcess
) -> None:
    alice = await world.actor(await world.domain())
    folder = await create(vapi, alice, volume="local", quota_bytes=1000)
    assert (folder["owner"], folder["ownership"], folder["permission"]) == (
        {"kind": "user", "id": str(alice.user.id)},
        "owner",
        "rw",
    )
    assert (storage_proxy.posix_root / uuid.UUID(folder["id"]).hex).is_dir()

    status, tok = await token(vapi, alice, folder["id"], "upload")
    assert status == 200 and tok["url"] == storage_proxy.public_url
    await upload(tok["url"], tok["token"], "hello.txt", b"0123456789")

    got = await (await vapi.get(f"{V}/{folder['id']}", headers=alice.headers)).json()
    assert got["usage"] == {
        "used_bytes": 10,
        "file_count": 1,
        "reserved_bytes": 0,
        "quota_bytes": 1000,
    }

    listed = await vapi.get(V, params={"with_usage": "true"}, headers=alice.headers)
    items = (await listed.json())["items"]
    assert [(i["id"], i["used_bytes"]) for i in items] == [(folder["id"], 10)]

    renamed = await vapi.patch(
        f"{V}/{folder['id']}", json={"name": "renamed", "quota_bytes": 5}, headers=alice.headers
    )
    assert renamed.status == 200
    assert ((await renamed.json())["name"], (await renamed.json())["quota_bytes"]) == (
        "renamed",
        5,
    )
    # The proxy now enforces the lowered quota.
    status, tok = await token(vapi, alice, folder["id"], "upload")
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{tok['url']}/v1/upload",
            headers={
                "Authorization": f"Bearer {tok['token']}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "100",
                "Upload-Metadata": "filename YmlnLmJpbg==",
            },
        )
        assert resp.status == 413

    deleted = await vapi.delete(f"{V}/{folder['id']}", headers=alice.headers)
    assert deleted.status == 204
    assert (await vapi.get(f"{V}/{folder['id']}", headers=alice.headers)).status == 404
    assert not (storage_proxy.posix_root / uuid.UUID(folder["id"]).hex).exists()
    # The name is free again.
    again = await vapi.post(V, json={"name": "renamed"}, headers=alice.headers)
    assert again.status == 201


async def test_bad_input_gets_clear_errors(vapi: Any, world: World) -> None:
    alice = await world.actor(await world.domain())
    folder = await create(vapi, alice, name="dup")
    cases = [
        ("POST", V, {"name": "dup"}, 409, "vfolder_exists"),
        ("POST", V, {"name": "../x"}, 422, "validation_error"),
        ("POST", V, {"name": "n", "volume": "nope"}, 404, "volume_not_found"),
        ("POST", V, {"name": "n", "quota_bytes": -1}, 422, "validation_error"),
        ("POST", f"{V}/{folder['id']}/token", {"op": "fly"}, 422, "validation_error"),
        ("POST", f"{V}/{folder['id']}/token", {"op": "list", "path": "../x"}, 400, "invalid_path"),
        ("GET", f"{V}/not-a-uuid", None, 400, "invalid_path"),
        ("POST", f"{V}/{folder['id']}/files/mkdir", {"path": "/abs"}, 400, "invalid_path"),
        ("POST", f"{V}/{folder['id']}/shares", {"mode": "rw"}, 422, "validation_error"),
    ]
    for method, path, body, status, code in cases:
        resp = await vapi.request(method, path, json=body, headers=alice.headers)
        data = await resp.json()
        assert (resp.status, data["code"]) == (status, code), (method, path, data)
        assert data["request_id"]


async def test_files_are_proxied_and_scoped(vapi: Any, world: World) -> None:
    dom = await world.domain()
    alice, mallory = await world.actor(dom), await world.actor(dom)
    folder = await create(vapi, alice)
    base = f"{V}/{folder['id']}/files"
    assert (
        await vapi.post(
            f"{base}/mkdir", json={"path": "a/b", "parents": True}, headers=alice.headers
        )
    ).status == 204
    assert (
        await vapi.post(f"{base}/move", json={"src": "a", "dst": "c"}, headers=alice.headers)
    ).status == 204
    listed = await (await vapi.get(base, params={"path": "c"}, headers=alice.headers)).json()
    assert [(e["path"], e["kind"]) for e in listed["entries"]] == [("c/b", "directory")]
    missing = await vapi.post(f"{base}/delete", json={"paths": ["zzz"]}, headers=alice.headers)
    assert (missing.status, (await missing.json())["code"]) == (404, "file_not_found")
    assert (
        await vapi.post(
            f"{base}/delete", json={"paths": ["c"], "recursive": True}, headers=alice.headers
        )
    ).status == 204
    # Another user of the same domain sees nothing of it.
    for method, path in [
        ("GET", f"{V}/{folder['id']}"),
        ("GET", base),
        ("POST", f"{V}/{folder['id']}/token"),
        ("DELETE", f"{V}/{folder['id']}"),
        ("PATCH", f"{V}/{folder['id']}"),
    ]:
        body = (
            {"op": "download"}
            if path.endswith("token")
            else ({"name": "x"} if method == "PATCH" else None)
        )
        resp = await vapi.request(method, path, json=body, headers=mallory.headers)
        assert (resp.status, (await resp.json())["code"]) == (404, "vfolder_not_found"), path
    assert (await (await vapi.get(V, headers=mallory.headers)).json())["items"] == []


async def test_shares_scope_modes_and_cross_tenant(vapi: Any, world: World) -> None:
    dom, other = await world.domain(), await world.domain()
    project = await world.project(dom)
    owner = await world.actor(dom)
    reader = await world.actor(dom)
    member = await world.actor(dom, projects={project.id: ProjectRole.MEMBER})
    outsider = await world.actor(other, role=UserRole.DOMAIN_ADMIN)
    folder = await create(vapi, owner)
    fid = folder["id"]

    ro = await vapi.post(
        f"{V}/{fid}/shares",
        json={"username": reader.user.username, "permission": "ro"},
        headers=owner.headers,
    )
    assert ro.status == 200
    share = await ro.json()
    assert share["mode"] == "ro" and share["user_id"] == str(reader.user.id)
    rw = await vapi.post(
        f"{V}/{fid}/shares",
        json={"project_id": str(project.id), "mode": "rw"},
        headers=owner.headers,
    )
    assert rw.status == 200

    seen = await (await vapi.get(f"{V}/{fid}", headers=reader.headers)).json()
    assert (seen["ownership"], seen["permission"], seen["can_manage"]) == ("shared", "ro", False)
    assert [
        i["id"] for i in (await (await vapi.get(V, headers=reader.headers)).json())["items"]
    ] == [fid]
    seen = await (await vapi.get(f"{V}/{fid}", headers=member.headers)).json()
    assert seen["permission"] == "rw"

    # A read-only share reads but never writes, neither by token nor through the manager.
    assert (await token(vapi, reader, fid, "download", path="x"))[0] == 200
    for op in ("upload", "mkdir", "move", "delete"):
        status, body = await token(vapi, reader, fid, op)
        assert (status, body["code"]) == (403, "vfolder_read_only"), op
    mk = await vapi.post(f"{V}/{fid}/files/mkdir", json={"path": "x"}, headers=reader.headers)
    assert (mk.status, (await mk.json())["code"]) == (403, "vfolder_read_only")
    status, _ = await token(vapi, member, fid, "upload")
    assert status == 200

    # Sharees cannot manage; cross-tenant callers and targets are not found.
    assert (await vapi.delete(f"{V}/{fid}", headers=reader.headers)).status == 403
    assert (
        await vapi.patch(f"{V}/{fid}", json={"name": "x"}, headers=member.headers)
    ).status == 403
    assert (await vapi.get(f"{V}/{fid}", headers=outsider.headers)).status == 404
    foreign = await vapi.post(
        f"{V}/{fid}/shares", json={"user_id": str(outsider.user.id)}, headers=owner.headers
    )
    assert (foreign.status, (await foreign.json())["code"]) == (404, "user_not_found")
    own = await vapi.post(
        f"{V}/{fid}/shares", json={"user_id": str(owner.user.id)}, headers=owner.headers
    )
    assert (own.status, (await own.json())["code"]) == (400, "share_with_owner")

    listed = await (await vapi.get(f"{V}/{fid}/shares", headers=owner.headers)).json()
    assert {s["id"] for s in listed["items"]} == {share["id"], (await rw.json())["id"]}
    # Unshare: the reader loses the folder entirely.
    gone = await vapi.delete(f"{V}/{fid}/shares/{share['id']}", headers=owner.headers)
    assert gone.status == 204
    assert (await vapi.get(f"{V}/{fid}", headers=reader.headers)).status == 404
    assert (await (await vapi.get(V, headers=reader.headers)).json())["items"] == []


async def test_project_folders_need_a_project_admin(vapi: Any, world: World) -> None:
    dom = await world.domain()
    project = await world.project(dom)
    admin = await world.actor(dom, projects={project.id: ProjectRole.ADMIN})
    member = await world.actor(dom, projects={project.id: ProjectRole.MEMBER})
    refused = await vapi.post(
        V, json={"name": "team", "project_id": str(project.id)}, headers=member.headers
    )
    assert refused.status == 403
    folder = await create(vapi, admin, name="team", project_id=str(project.id))
    assert folder["owner"] == {"kind": "project", "id": str(project.id)}
    seen = await (await vapi.get(f"{V}/{folder['id']}", headers=member.headers)).json()
    assert (seen["ownership"], seen["permission"], seen["can_manage"]) == ("project", "rw", False)


async def test_tokens_round_trip_and_stay_in_scope(
    vapi: Any, world: World, storage_proxy: ProxyProcess
) -> None:
    alice = await world.actor(await world.domain())
    one, two = await create(vapi, alice), await create(vapi, alice)
    _, up = await token(vapi, alice, one["id"], "upload", path="docs")
    await upload(up["url"], up["token"], "docs/report.txt", b"report body")
    expires = datetime.fromisoformat(up["expires_at"])
    assert 3500 < (expires - datetime.now(UTC)).total_seconds() <= 3600

    _, down = await token(vapi, alice, one["id"], "download")
    resp = await download(down["url"], down["token"], "docs/report.txt")
    assert (resp.status_code, resp.content) == (200, b"report body")
    # The same download token cannot upload, and a token for one folder opens no other.
    async with aiohttp.ClientSession() as http:
        refused = await http.post(
            f"{down['url']}/v1/upload",
            headers={
                "Authorization": f"Bearer {down['token']}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "1",
                "Upload-Metadata": "filename eA==",
            },
        )
        assert (refused.status, (await refused.json())["code"]) == (403, "token_scope")
    _, other = await token(vapi, alice, two["id"], "download")
    assert (await download(other["url"], other["token"], "docs/report.txt")).status_code == 404
    # An upload token limited to docs/ cannot write elsewhere.
    async with aiohttp.ClientSession() as http:
        outside = await http.post(
            f"{up['url']}/v1/upload",
            headers={
                "Authorization": f"Bearer {up['token']}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "1",
                "Upload-Metadata": "path b3RoZXIudHh0",  # other.txt
            },
        )
        assert outside.status == 403


async def test_delete_is_refused_while_a_session_mounts_the_folder(
    vapi: Any, world: World, vf_config: ManagerConfig
) -> None:
    dom = await world.domain()
    project = await world.project(dom)
    owner = await world.actor(dom, projects={project.id: ProjectRole.MEMBER})
    reader = await world.actor(dom, projects={project.id: ProjectRole.MEMBER})
    folder = await create(vapi, owner, name="mounted")
    await vapi.post(
        f"{V}/{folder['id']}/shares", json={"user_id": str(reader.user.id)}, headers=owner.headers
    )
    async with aiohttp.ClientSession() as http:
        storage = Storage(
            client=StorageProxyClient(vf_config.storage_proxy_url or "", CLUSTER_SECRET, http),
            token_secret=TOKEN_SECRET,
        )
        async with world.db_factory() as db, db.begin():
            me = principal_of(owner, {project.id: ProjectRole.MEMBER})
            mounts = await resolve_mounts(
                db,
                me,
                mounts=[
                    {"folder": "mounted", "path": "/data", "mode": "rw"},
                    {"folder": folder["id"], "path": "/data-ro/", "mode": "ro"},
                ],
                storage=storage,
            )
            session = _session_row(owner, project.id, mounts)
            db.add(session)
        assert [(m["container_path"], m["mode"]) for m in mounts] == [
            ("/data", "rw"),
            ("/data-ro", "ro"),
        ]
        assert mounts[0]["host_path"].endswith(uuid.UUID(folder["id"]).hex)
        assert "fuse" not in mounts[0]
        # A read-only sharee may mount read-only, never read-write.
        async with world.db_factory() as db, db.begin():
            them = principal_of(reader, {project.id: ProjectRole.MEMBER})
            ok = await resolve_mounts(
                db,
                them,
                mounts=[{"folder": folder["id"], "path": "/r", "mode": "ro"}],
                storage=storage,
            )
            assert ok[0]["mode"] == "ro"
            with pytest.raises(Forbidden) as refused:
                await resolve_mounts(
                    db,
                    them,
                    mounts=[{"folder": folder["id"], "path": "/r", "mode": "rw"}],
                    storage=storage,
                )
            assert refused.value.code == "vfolder_read_only"

    busy = await vapi.delete(f"{V}/{folder['id']}", headers=owner.headers)
    body = await busy.json()
    assert (busy.status, body["code"]) == (409, "vfolder_in_use")
    assert session.name in body["message"]
    async with world.db_factory() as db, db.begin():
        row = await db.get(SessionRow, session.id)
        assert row is not None
        row.status = SessionStatus.TERMINATED
    assert (await vapi.delete(f"{V}/{folder['id']}", headers=owner.headers)).status == 204


async def test_force_deletes_a_mounted_folder(vapi: Any, world: World) -> None:
    dom = await world.domain()
    project = await world.project(dom)
    owner = await world.actor(dom, projects={project.id: ProjectRole.MEMBER})
    folder = await create(vapi, owner)
    async with world.db_factory() as db, db.begin():
        db.add(_session_row(owner, project.id, [{"folder_id": folder["id"], "host_path": "/x"}]))
    assert (await vapi.delete(f"{V}/{folder['id']}", headers=owner.headers)).status == 409
    forced = await vapi.delete(
        f"{V}/{folder['id']}", params={"force": "true"}, headers=owner.headers
    )
    assert forced.status == 204


async def test_a_delete_the_proxy_cannot_finish_is_finished_by_the_cleanup_step(
    aiohttp_client: Any,
    vapi: Any,
    world: World,
    vf_config: ManagerConfig,
    no_proxy_config: ManagerConfig,
    storage_proxy: ProxyProcess,
) -> None:
    from manager.app import create_app

    alice = await world.actor(await world.domain())
    folder = await create(vapi, alice, name="doomed")
    on_disk = storage_proxy.posix_root / uuid.UUID(folder["id"]).hex
    (on_disk / "file").write_bytes(b"x")
    cut_off = await aiohttp_client(create_app(no_proxy_config))
    resp = await cut_off.delete(f"{V}/{folder['id']}", headers=alice.headers)
    assert (resp.status, (await resp.json())["status"]) == (202, "deleting")
    # Hidden at once, the name is free, the files are still there until the proxy answers.
    assert (await (await vapi.get(V, headers=alice.headers)).json())["items"] == []
    assert (await vapi.post(V, json={"name": "doomed"}, headers=alice.headers)).status == 201
    assert on_disk.exists()
    async with world.db_factory() as db:
        assert (await db.get(VFolderRow, uuid.UUID(folder["id"]))).status is VFolderStatus.DELETING  # type: ignore[union-attr]

    async with aiohttp.ClientSession() as http:
        ctx = LoopContext(
            config=vf_config,
            db_factory=world.db_factory,
            clock=lambda: datetime.now(UTC),
            http=http,
            metrics=ApiMetrics(),
            owner="test",
            wake=lambda _name: None,
        )
        assert await vfolder_cleanup_step(ctx) is True
        assert await vfolder_cleanup_step(ctx) is False  # nothing left
    assert not on_disk.exists()
    async with world.db_factory() as db:
        assert await db.get(VFolderRow, uuid.UUID(folder["id"])) is None


async def test_without_a_storage_proxy_the_api_says_so(api: Any, world: World) -> None:
    alice = await world.actor(await world.domain())
    resp = await api.post(V, json={"name": "x"}, headers=alice.headers)
    assert (resp.status, (await resp.json())["code"]) == (400, "storage_not_configured")
    assert (await api.get(V, headers=alice.headers)).status == 200


def _session_row(actor: Actor, project_id: uuid.UUID, mounts: list[dict[str, Any]]) -> SessionRow:
    now = datetime.now(UTC)
    return SessionRow(
        id=uuid.uuid4(),
        name=unique("s"),
        domain_id=actor.user.domain_id,
        project_id=project_id,
        user_id=actor.user.id,
        resource_group="default",
        type=SessionType.BATCH,
        image="img",
        architecture="x86_64",
        command=None,
        env={},
        containers_spec=[{"cpu": "1", "mem": "1"}],
        mounts=mounts,
        status=SessionStatus.RUNNING,
        status_changed_at=now,
        waiting_since=now,
        created_at=now,
    )
