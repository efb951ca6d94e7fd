"""Handlers and route table of virtual folders (`VFOLDER_ROUTES`, listed in routes.py).

Most routes talk to the storage proxy, so they are not transactional: the service opens short
transactions around the proxy calls. File bytes never pass through here; clients ask for a
token (`POST .../token`) and talk to the proxy's public API directly."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from manager.api.framework import Call, Handler, Route
from manager.api.permissions import Permission as P
from manager.api.schemas import vfolders as s
from manager.api.schemas.common import PageResponse
from manager.db.models import VFolderStatus
from manager.services import vfolder_files as files
from manager.services import vfolder_shares as shares
from manager.services import vfolders as svc
from manager.state import STATE_KEY
from storage_proxy.contract import UsageResponse

V1 = "/api/v1"
VFOLDER = f"{V1}/vfolders/{{vfolder_id}}"
TAGS = ("vfolders",)


def _storage(call: Call) -> svc.Storage:
    state = call.request.app[STATE_KEY]
    return svc.open_storage(state.config, state.http, state.storage)


def _maybe_storage(call: Call) -> svc.Storage | None:
    state = call.request.app[STATE_KEY]
    if state.storage.url is None:  # none configured, or none registered right now
        return None
    return svc.open_storage(state.config, state.http, state.storage)


def _out(view: svc.FolderView, usage: UsageResponse | None = None) -> s.VFolderOut:
    row = view.row
    owner = (
        s.OwnerOut(kind="project", id=row.owner_project_id)
        if row.owner_project_id
        else s.OwnerOut(kind="user", id=row.owner_user_id)
    )
    return s.VFolderOut(
        id=row.id,
        name=row.name,
        volume=row.volume,
        owner=owner,
        ownership=view.access.ownership,
        permission=view.access.mode,
        can_manage=view.access.manage,
        quota_bytes=row.quota_bytes,
        status=row.status,
        created_at=row.created_at,
        usage=s.UsageOut.model_validate(usage.model_dump()) if usage else None,
        used_bytes=usage.used_bytes if usage else None,
    )


async def create_vfolder(call: Call) -> s.VFolderOut:
    body = call.body
    view = await svc.create_vfolder(
        call.request.app[STATE_KEY].db_factory,
        call.me,
        storage=_storage(call),
        name=body.name,
        volume=body.volume,
        project_id=body.project_id,
        quota_bytes=body.quota_bytes,
        now=call.now,
    )
    return _out(view)


async def list_vfolders(call: Call) -> PageResponse[s.VFolderOut]:
    q = call.query
    page = await svc.list_vfolders(
        call.request.app[STATE_KEY].db_factory, call.me, cursor=q.cursor, limit=q.limit
    )
    usages: list[UsageResponse | None] = [None] * len(page.items)
    if q.with_usage and page.items:
        usages = await svc.usage_many(_storage(call), [v.row for v in page.items])
    return PageResponse[s.VFolderOut](
        items=[_out(v, u) for v, u in zip(page.items, usages, strict=True)],
        next_cursor=page.next_cursor,
    )


async def get_vfolder(call: Call) -> s.VFolderOut:
    view = await svc.get_vfolder(
        call.request.app[STATE_KEY].db_factory, call.me, folder_id=call.path_uuid("vfolder_id")
    )
    storage = _maybe_storage(call)
    if view.row.status is not VFolderStatus.READY or storage is None:
        return _out(view)
    return _out(view, await svc.usage_of(storage, view.row))


async def update_vfolder(call: Call) -> s.VFolderOut:
    changes = call.body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None:
        changes.pop("name")
    view = await svc.update_vfolder(
        call.request.app[STATE_KEY].db_factory,
        call.me,
        storage=_storage(call) if "quota_bytes" in changes else None,
        folder_id=call.path_uuid("vfolder_id"),
        changes=changes,
    )
    return _out(view)


async def delete_vfolder(call: Call) -> web.StreamResponse | None:
    folder_id = call.path_uuid("vfolder_id")
    done = await svc.delete_vfolder(
        call.request.app[STATE_KEY].db_factory,
        call.me,
        storage=_storage(call),
        folder_id=folder_id,
        force=call.query.force,
    )
    if done:
        return None
    body = s.DeleteAccepted(
        id=folder_id,
        status=VFolderStatus.DELETING,
        message="the storage proxy did not answer; the manager finishes the delete later",
    )
    return web.json_response(body.model_dump(mode="json"), status=202)


async def share_vfolder(call: Call) -> s.ShareOut:
    b = call.body
    row = await shares.share_vfolder(
        call.tx,
        call.me,
        folder_id=call.path_uuid("vfolder_id"),
        user_id=b.user_id,
        username=b.username,
        project_id=b.project_id,
        mode=b.mode,
    )
    return s.ShareOut.model_validate(row)


async def list_shares(call: Call) -> s.ShareList:
    rows = await shares.list_shares(call.tx, call.me, folder_id=call.path_uuid("vfolder_id"))
    return s.ShareList(items=[s.ShareOut.model_validate(r) for r in rows])


async def unshare_vfolder(call: Call) -> None:
    await shares.unshare_vfolder(
        call.tx,
        call.me,
        folder_id=call.path_uuid("vfolder_id"),
        share_id=call.path_uuid("share_id"),
    )


async def list_files(call: Call) -> s.FileList:
    entries = await files.list_files(
        call.request.app[STATE_KEY].db_factory,
        call.me,
        storage=_storage(call),
        folder_id=call.path_uuid("vfolder_id"),
        path=call.query.path,
    )
    return s.FileList(entries=entries)


def _file_change(op: str) -> Handler:
    async def handle(call: Call) -> None:
        await files.change_files(
            call.request.app[STATE_KEY].db_factory,
            call.me,
            storage=_storage(call),
            folder_id=call.path_uuid("vfolder_id"),
            op=op,  # type: ignore[arg-type]
            args=call.body.model_dump(),
        )

    return handle


async def issue_token(call: Call) -> s.FolderTokenOut:
    b = call.body
    issued = await files.issue_token(
        call.request.app[STATE_KEY].db_factory,
        call.me,
        storage=_storage(call),
        folder_id=call.path_uuid("vfolder_id"),
        op=b.op,
        path=b.path,
        ttl_s=b.ttl_s,
        now=call.now,
    )
    return s.FolderTokenOut(
        token=issued.token,
        url=issued.url,
        op=issued.op,
        path=issued.path,
        expires_at=issued.expires_at,
    )


def _route(
    method: str,
    path: str,
    handler: Handler,
    summary: str,
    *,
    transactional: bool = False,
    **kw: Any,
) -> Route:
    return Route(
        method, path, handler, P.SELF, summary, transactional=transactional, tags=TAGS, **kw
    )


VFOLDER_ROUTES = [
    _route(
        "POST",
        f"{V1}/vfolders",
        create_vfolder,
        "Create a virtual folder",
        body=s.VFolderCreate,
        response=s.VFolderOut,
        status=201,
    ),
    _route(
        "GET",
        f"{V1}/vfolders",
        list_vfolders,
        "List the folders you own, your projects own, or are shared with you",
        query=s.VFolderFilter,
        response=PageResponse[s.VFolderOut],
    ),
    _route("GET", VFOLDER, get_vfolder, "Get a folder with its usage", response=s.VFolderOut),
    _route(
        "PATCH",
        VFOLDER,
        update_vfolder,
        "Rename a folder or change its quota",
        body=s.VFolderUpdate,
        response=s.VFolderOut,
    ),
    _route(
        "DELETE",
        VFOLDER,
        delete_vfolder,
        "Delete a folder and its files",
        query=s.DeleteQuery,
        response=s.DeleteAccepted,
    ),
    _route(
        "GET",
        f"{VFOLDER}/shares",
        list_shares,
        "List a folder's shares",
        response=s.ShareList,
        transactional=True,
    ),
    _route(
        "POST",
        f"{VFOLDER}/shares",
        share_vfolder,
        "Share a folder with a user or project (ro|rw)",
        body=s.ShareCreate,
        response=s.ShareOut,
        transactional=True,
    ),
    _route(
        "DELETE",
        f"{VFOLDER}/shares/{{share_id}}",
        unshare_vfolder,
        "Remove a share",
        transactional=True,
    ),
    _route(
        "GET",
        f"{VFOLDER}/files",
        list_files,
        "List files in a folder",
        query=s.FilesQuery,
        response=s.FileList,
    ),
    _route(
        "POST",
        f"{VFOLDER}/files/mkdir",
        _file_change("mkdir"),
        "Create a directory",
        body=s.MkdirBody,
    ),
    _route(
        "POST",
        f"{VFOLDER}/files/move",
        _file_change("move"),
        "Move or rename a file (never overwrites)",
        body=s.MoveBody,
    ),
    _route(
        "POST",
        f"{VFOLDER}/files/delete",
        _file_change("delete"),
        "Delete files",
        body=s.DeleteFilesBody,
    ),
    _route(
        "POST",
        f"{VFOLDER}/token",
        issue_token,
        "A short-lived token for one operation on the storage proxy's public API",
        body=s.TokenRequest,
        response=s.FolderTokenOut,
    ),
]
