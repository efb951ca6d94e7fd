"""Virtual folders: the manager keeps who owns and may use a folder; the storage proxy keeps the
bytes. Every read is scoped: a folder the caller may not see is reported as not found.

Calls to the proxy never run inside a transaction the caller is waiting on (except
`resolve_mounts`, which runs inside session creation): state changes are committed first, then
the proxy is called, then the outcome is recorded. A delete commits `deleting` before the proxy
removes the files, so a crash in between leaves a row `vfolder_cleanup_step` finishes.
Shares live in vfolder_shares.py, file operations and tokens in vfolder_files.py.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from sqlalchemy import Select, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.clients.storage import StorageError, StorageProxyClient
from manager.config import ManagerConfig
from manager.db.engine import DbFactory
from manager.db.models import (
    SessionRow,
    ShareMode,
    VFolderRow,
    VFolderShareRow,
    VFolderStatus,
)
from manager.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from manager.lifecycle.session import ACTIVE
from manager.services.common import apply_changes, insert_row, require
from manager.services.pagination import Page, paginate
from manager.services.tenancy import get_project
from manager.storage_locator import StorageProxyLocator
from storage_proxy.contract import (
    UsageResponse,
)

if TYPE_CHECKING:
    from manager.reconcilers.context import LoopContext

log = logging.getLogger("berth.manager.vfolders")

CLEANUP_BATCH = 16
USAGE_CONCURRENCY = 8
Ownership = Literal["owner", "project", "shared", "admin"]


# --- wiring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The storage proxy as the services see it: its internal API and the token key."""

    client: StorageProxyClient
    token_secret: str


def open_storage(
    config: ManagerConfig,
    http: aiohttp.ClientSession | None,
    locator: StorageProxyLocator | None = None,
) -> Storage:
    """The storage proxy: the configured one or the one registered in etcd (`locator`; None:
    the fixed `storage_proxy_url`). `400 storage_not_configured` when there is none (a
    deployment choice, not an outage); `503 storage_unavailable` when discovery finds no
    registered proxy right now (it stopped or crashed)."""
    locator = locator or StorageProxyLocator(explicit=config.storage_proxy_url)
    if not locator.configured or http is None:
        raise InvalidRequest(
            "virtual folders need a storage proxy: set storage_proxy_url in the manager config",
            code="storage_not_configured",
        )
    url = locator.url
    if url is None:
        raise Unavailable(
            "no storage proxy is registered in the config store", code="storage_unavailable"
        )
    client = StorageProxyClient(url, config.cluster_secret.get_secret_value(), http)
    return Storage(client=client, token_secret=config.storage_token_secret.get_secret_value())


def storage_error(exc: StorageError) -> DomainError:
    """The proxy's refusal as the manager's error, keeping the proxy's stable code."""
    if exc.status is None or exc.status >= 500:
        return Unavailable(f"the storage proxy failed: {exc.message}", code="storage_unavailable")
    if exc.status == 404:
        return NotFound(exc.message, code=exc.code)
    if exc.status == 409:
        return Conflict(exc.message, code=exc.code)
    if exc.status == 413:
        return PayloadTooLarge(exc.message, code=exc.code)
    if exc.status == 403:
        return Forbidden(exc.message, code=exc.code)
    if exc.status == 401:  # our cluster secret was refused: a configuration problem
        return Unavailable(f"the storage proxy refused the manager: {exc.message}")
    return InvalidRequest(exc.message, code=exc.code)


# --- access -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    mode: ShareMode
    manage: bool
    ownership: Ownership


@dataclass(frozen=True)
class FolderView:
    row: VFolderRow
    access: Access


def access_of(
    principal: Principal, row: VFolderRow, shares: list[VFolderShareRow]
) -> Access | None:
    """What the caller may do with a folder; None when they may not see it."""
    if row.owner_user_id == principal.user_id:
        return Access(ShareMode.RW, True, "owner")
    project_id = row.owner_project_id
    if project_id is not None:
        if principal.is_project_admin_of(project_id=project_id, domain_id=row.domain_id):
            return Access(
                ShareMode.RW, True, "project" if principal.is_member_of(project_id) else "admin"
            )
        if principal.is_member_of(project_id):
            return Access(ShareMode.RW, False, "project")
    if principal.is_domain_admin_of(row.domain_id):
        return Access(ShareMode.RW, True, "admin")
    modes = {
        s.mode
        for s in shares
        if s.user_id == principal.user_id
        or (s.project_id is not None and principal.is_member_of(s.project_id))
    }
    if modes:
        return Access(ShareMode.RW if ShareMode.RW in modes else ShareMode.RO, False, "shared")
    return None


def _listed(principal: Principal) -> Select[Any]:
    """Folders the caller owns, that their projects own, or that are shared with them."""
    projects = list(principal.project_roles)
    shared = exists().where(
        VFolderShareRow.vfolder_id == VFolderRow.id,
        or_(
            VFolderShareRow.user_id == principal.user_id, VFolderShareRow.project_id.in_(projects)
        ),
    )
    return select(VFolderRow).where(
        VFolderRow.status == VFolderStatus.READY,
        or_(
            VFolderRow.owner_user_id == principal.user_id,
            VFolderRow.owner_project_id.in_(projects),
            shared,
        ),
    )


async def _shares(db: AsyncSession, folder_ids: list[uuid.UUID]) -> list[VFolderShareRow]:
    if not folder_ids:
        return []
    rows = await db.scalars(
        select(VFolderShareRow).where(VFolderShareRow.vfolder_id.in_(folder_ids))
    )
    return list(rows.all())


async def load_folder(
    db: AsyncSession,
    principal: Principal,
    *,
    folder_id: uuid.UUID,
    lock: Literal["update", "share"] | None = None,
    include_deleting: bool = False,
) -> FolderView:
    query = select(VFolderRow).where(VFolderRow.id == folder_id)
    if lock is not None:
        query = query.with_for_update(read=lock == "share")
    row = await db.scalar(query)
    access = access_of(principal, row, await _shares(db, [folder_id])) if row else None
    if row is None or access is None:
        raise NotFound("virtual folder not found", code="vfolder_not_found")
    if row.status is not VFolderStatus.READY and not include_deleting:
        raise NotFound("virtual folder is being deleted", code="vfolder_not_found")
    return FolderView(row=row, access=access)


async def find_folder(
    db: AsyncSession, principal: Principal, *, ref: str, lock: Literal["share"] | None = None
) -> FolderView:
    """A folder by id, or by name among the folders the caller can list (their own first)."""
    try:
        return await load_folder(db, principal, folder_id=uuid.UUID(ref), lock=lock)
    except ValueError:
        pass
    rows = list((await db.scalars(_listed(principal).where(VFolderRow.name == ref))).all())
    own = [r for r in rows if r.owner_user_id == principal.user_id]
    if len(own) == 1 or len(rows) == 1:
        return await load_folder(db, principal, folder_id=(own or rows)[0].id, lock=lock)
    if not rows:
        raise NotFound(f"no virtual folder named {ref!r}", code="vfolder_not_found")
    raise InvalidRequest(
        f"several virtual folders are named {ref!r}; use the folder id",
        code="vfolder_ambiguous",
    )


async def usable_folder(
    db_factory: DbFactory, principal: Principal, *, folder_id: uuid.UUID, write: bool
) -> VFolderRow:
    async with db_factory() as db, db.begin():
        view = await load_folder(db, principal, folder_id=folder_id)
    if write and view.access.mode is not ShareMode.RW:
        raise Forbidden("this folder is shared with you read-only", code="vfolder_read_only")
    return view.row


# --- folders ----------------------------------------------------------------------------------


async def create_vfolder(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage,
    name: str,
    volume: str | None,
    project_id: uuid.UUID | None,
    quota_bytes: int | None,
    now: datetime,
) -> FolderView:
    """Create the folder on the proxy first (idempotent), then record it; undo on a conflict."""
    domain_id = principal.domain_id
    async with db_factory() as db, db.begin():
        if project_id is not None:
            project = await get_project(db, principal, project_id=project_id)
            require(
                principal.is_project_admin_of(project_id=project.id, domain_id=project.domain_id),
                "only project admins create folders owned by the project",
            )
            domain_id = project.domain_id
        await _check_name_free(
            db,
            owner_user_id=None if project_id else principal.user_id,
            owner_project_id=project_id,
            name=name,
        )
    try:
        volume = volume or await _default_volume(storage)
        folder_id = uuid.uuid4()
        await storage.client.create_folder(volume, folder_id.hex, quota_bytes=quota_bytes)
    except StorageError as exc:
        raise storage_error(exc) from None
    row = VFolderRow(
        id=folder_id,
        name=name,
        domain_id=domain_id,
        owner_user_id=None if project_id else principal.user_id,
        owner_project_id=project_id,
        volume=volume,
        quota_bytes=quota_bytes,
        status=VFolderStatus.READY,
        created_by=principal.user_id,
        created_at=now,
    )
    try:
        async with db_factory() as db, db.begin():
            await insert_row(db, row, conflict=f"a folder named {name!r} already exists")
    except BaseException:
        await _discard(storage, volume, folder_id.hex)
        raise
    return FolderView(row, Access(ShareMode.RW, True, "project" if project_id else "owner"))


async def _check_name_free(
    db: AsyncSession,
    *,
    owner_user_id: uuid.UUID | None,
    owner_project_id: uuid.UUID | None,
    name: str,
) -> None:
    owner = (
        VFolderRow.owner_project_id == owner_project_id
        if owner_project_id
        else VFolderRow.owner_user_id == owner_user_id
    )
    taken = await db.scalar(
        select(VFolderRow.id).where(
            owner, VFolderRow.name == name, VFolderRow.status == VFolderStatus.READY
        )
    )
    if taken is not None:
        raise Conflict(f"a folder named {name!r} already exists", code="vfolder_exists")


async def _default_volume(storage: Storage) -> str:
    info = await storage.client.info()
    if not info.volumes:
        raise Unavailable("the storage proxy serves no volumes", code="storage_unavailable")
    return info.volumes[0].name


async def _discard(storage: Storage, volume: str, folder_id: str) -> None:
    try:
        await storage.client.delete_folder(volume, folder_id)
    except StorageError as exc:  # an empty folder nobody references; harmless
        log.warning("could not remove folder after a failed create: %s", exc)


async def list_vfolders(
    db_factory: DbFactory,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
) -> Page[FolderView]:
    async with db_factory() as db, db.begin():
        page = await paginate(db, _listed(principal), model=VFolderRow, cursor=cursor, limit=limit)
        shares = await _shares(db, [r.id for r in page.items])
    views = []
    for row in page.items:
        access = access_of(principal, row, [s for s in shares if s.vfolder_id == row.id])
        assert access is not None, "listed folders are visible"
        views.append(FolderView(row, access))
    return Page(items=views, next_cursor=page.next_cursor)


async def usage_of(storage: Storage, row: VFolderRow) -> UsageResponse:
    try:
        return await storage.client.usage(row.volume, row.folder_id)
    except StorageError as exc:
        raise storage_error(exc) from None


async def usage_many(storage: Storage, rows: list[VFolderRow]) -> list[UsageResponse | None]:
    """Usage of several folders, a few requests at a time; None where the proxy failed."""
    gate = asyncio.Semaphore(USAGE_CONCURRENCY)

    async def one(row: VFolderRow) -> UsageResponse | None:
        async with gate:
            try:
                return await storage.client.usage(row.volume, row.folder_id)
            except StorageError:
                return None

    return list(await asyncio.gather(*(one(r) for r in rows)))


async def get_vfolder(
    db_factory: DbFactory, principal: Principal, *, folder_id: uuid.UUID
) -> FolderView:
    async with db_factory() as db, db.begin():
        return await load_folder(db, principal, folder_id=folder_id, include_deleting=True)


async def update_vfolder(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage | None,
    folder_id: uuid.UUID,
    changes: dict[str, Any],
) -> FolderView:
    """Rename and/or change the quota (on the proxy first, where it is enforced)."""
    async with db_factory() as db, db.begin():
        view = await load_folder(db, principal, folder_id=folder_id)
        require(view.access.manage, "only the folder's owner or an admin can change it")
    if "quota_bytes" in changes:
        if storage is None:
            raise Unavailable(
                "changing a quota needs the storage proxy", code="storage_unavailable"
            )
        try:
            await storage.client.set_quota(
                view.row.volume, view.row.folder_id, changes["quota_bytes"]
            )
        except StorageError as exc:
            raise storage_error(exc) from None
    async with db_factory() as db, db.begin():
        view = await load_folder(db, principal, folder_id=folder_id, lock="update")
        row = view.row
        if changes.get("name", row.name) != row.name:
            await _check_name_free(
                db,
                owner_user_id=row.owner_user_id,
                owner_project_id=row.owner_project_id,
                name=changes["name"],
            )
        await apply_changes(db, row, changes, conflict="a folder with that name already exists")
    return view


async def sessions_mounting(db: AsyncSession, folder_id: uuid.UUID) -> list[str]:
    """Names of the unfinished sessions that mount the folder."""
    rows = await db.scalars(
        select(SessionRow.name).where(
            SessionRow.status.in_(list(ACTIVE)),
            SessionRow.mounts.contains([{"folder_id": str(folder_id)}]),
        )
    )
    return list(rows.all())


async def delete_vfolder(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage,
    folder_id: uuid.UUID,
    force: bool,
) -> bool:
    """Mark deleting (commit), remove the files on the proxy, then the row. True when done;
    False when the proxy could not finish now and the cleanup loop will."""
    async with db_factory() as db, db.begin():
        view = await load_folder(
            db, principal, folder_id=folder_id, lock="update", include_deleting=True
        )
        require(view.access.manage, "only the folder's owner or an admin can delete it")
        row = view.row
        if row.status is VFolderStatus.READY:
            users = await sessions_mounting(db, row.id)
            if users and not force:
                raise Conflict(
                    f"the folder is mounted by unfinished sessions ({', '.join(sorted(users))}); "
                    "stop them first or pass force=true",
                    code="vfolder_in_use",
                    details={"sessions": sorted(users)},
                )
            row.status = VFolderStatus.DELETING
    return await finish_delete(db_factory, storage, folder_id=row.id, volume=row.volume)


async def finish_delete(
    db_factory: DbFactory, storage: Storage, *, folder_id: uuid.UUID, volume: str
) -> bool:
    try:
        await storage.client.delete_folder(volume, folder_id.hex)
    except StorageError as exc:
        if exc.code != "folder_not_found":
            log.warning(
                "folder delete deferred", extra={"vfolder_id": str(folder_id), "error": str(exc)}
            )
            return False
    async with db_factory() as db, db.begin():
        await db.execute(
            delete(VFolderRow).where(
                VFolderRow.id == folder_id, VFolderRow.status == VFolderStatus.DELETING
            )
        )
    return True


async def vfolder_cleanup_step(ctx: LoopContext) -> bool:
    """Finish deletes a crash or an unreachable proxy left in `deleting`."""
    locator = ctx.storage_proxy()
    if locator.url is None:
        return False
    storage = open_storage(ctx.config, ctx.http, locator)
    async with ctx.db_factory() as db:
        stuck = (
            await db.execute(
                select(VFolderRow.id, VFolderRow.volume)
                .where(VFolderRow.status == VFolderStatus.DELETING)
                .order_by(VFolderRow.created_at)
                .limit(CLEANUP_BATCH)
            )
        ).all()
    done = False
    for folder_id, volume in stuck:
        done = (
            await finish_delete(ctx.db_factory, storage, folder_id=folder_id, volume=volume)
            or done
        )
    # Only report work when something finished, so an unreachable proxy does not spin the loop.
    return done


# --- mounts into sessions ---------------------------------------------------------------------


async def resolve_mounts(
    db: AsyncSession,
    principal: Principal,
    *,
    mounts: list[dict[str, Any]],
    storage: Storage | None,
) -> list[dict[str, Any]]:
    """Check the caller may mount each folder `{folder, path, mode}` (folder: id or name) and
    return what dispatch needs: `{folder_id, name, volume, container_path, mode, host_path}`,
    plus `fuse` (a storage_proxy.contract.FuseMountSpec as JSON) for folders nodes must mount
    with FUSE first. The folder rows stay share-locked until the caller's transaction ends, so a
    concurrent delete either sees the new session or happens before it."""
    if not mounts:
        return []
    if storage is None:
        raise InvalidRequest(
            "mounting virtual folders needs the storage proxy; see docs/storage.md",
            code="mounts_unavailable",
        )
    resolved: list[dict[str, Any]] = []
    paths: set[str] = set()
    for mount in mounts:
        container_path = posixpath.normpath(str(mount["path"]))
        if not container_path.startswith("/") or container_path == "/":
            raise InvalidRequest(
                f"mount path {mount['path']!r} is not valid", code="invalid_mount"
            )
        if container_path in paths:
            raise InvalidRequest(f"{container_path} is mounted twice", code="invalid_mount")
        paths.add(container_path)
        mode = ShareMode(mount.get("mode", "rw"))
        view = await find_folder(db, principal, ref=str(mount["folder"]), lock="share")
        if mode is ShareMode.RW and view.access.mode is not ShareMode.RW:
            raise Forbidden(
                f"folder {view.row.name!r} is shared with you read-only; mount it with mode ro",
                code="vfolder_read_only",
            )
        try:
            info = await storage.client.mount_info(view.row.volume, view.row.folder_id)
        except StorageError as exc:
            raise storage_error(exc) from None
        entry: dict[str, Any] = {
            "folder_id": str(view.row.id),
            "name": view.row.name,
            "volume": view.row.volume,
            "container_path": container_path,
            "mode": mode.value,
            "host_path": info.host_path,
        }
        if info.kind == "fuse":
            if info.fuse is None:
                raise InvalidRequest("the proxy gave no FUSE mount spec", code="unsupported")
            entry["fuse"] = info.fuse.model_dump(mode="json")
        resolved.append(entry)
    return resolved
