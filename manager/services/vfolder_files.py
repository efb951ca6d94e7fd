"""File operations on a folder (proxied to the storage proxy's internal API) and tokens for its
public API, so file bytes go between client and proxy and never through the manager."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from manager.auth.principal import Principal
from manager.clients.storage import StorageError
from manager.db.engine import DbFactory
from manager.errors import InvalidRequest, Unavailable
from manager.services.vfolders import Storage, storage_error, usable_folder
from storage_proxy.contract import DEFAULT_TOKEN_TTL_S, FileEntry, FileOp, mint_token

WRITE_OPS = frozenset({FileOp.UPLOAD, FileOp.MKDIR, FileOp.MOVE, FileOp.DELETE})
UPLOAD_TOKEN_TTL_S = 3600  # resumable uploads of large files pause and resume


async def list_files(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage,
    folder_id: uuid.UUID,
    path: str,
) -> list[FileEntry]:
    row = await usable_folder(db_factory, principal, folder_id=folder_id, write=False)
    try:
        return await storage.client.list_files(row.volume, row.folder_id, path)
    except StorageError as exc:
        raise storage_error(exc) from None


async def change_files(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage,
    folder_id: uuid.UUID,
    op: Literal["mkdir", "move", "delete"],
    args: dict[str, Any],
) -> None:
    """mkdir {path, parents}, move {src, dst} or delete {paths, recursive} on the proxy."""
    row = await usable_folder(db_factory, principal, folder_id=folder_id, write=True)
    client = storage.client
    try:
        if op == "mkdir":
            await client.mkdir(row.volume, row.folder_id, args["path"], parents=args["parents"])
        elif op == "move":
            await client.move(row.volume, row.folder_id, src=args["src"], dst=args["dst"])
        else:
            await client.delete_files(
                row.volume, row.folder_id, args["paths"], recursive=args["recursive"]
            )
    except StorageError as exc:
        raise storage_error(exc) from None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    url: str
    op: FileOp
    path: str | None
    expires_at: datetime


async def issue_token(
    db_factory: DbFactory,
    principal: Principal,
    *,
    storage: Storage,
    folder_id: uuid.UUID,
    op: FileOp,
    path: str | None,
    ttl_s: int | None,
    now: datetime,
) -> IssuedToken:
    """A token for one operation on the proxy's public API, so file bytes never pass through
    the manager. Write operations need rw access."""
    if path is not None:
        path = path.strip("/")
        if path in ("", ".") or ".." in path.split("/") or "\x00" in path:
            raise InvalidRequest(
                "path must be a relative path inside the folder", code="invalid_path"
            )
    row = await usable_folder(db_factory, principal, folder_id=folder_id, write=op in WRITE_OPS)
    if not storage.token_secret:
        raise Unavailable(
            "storage_token_secret is not configured on the manager", code="storage_unavailable"
        )
    try:
        info = await storage.client.info()
    except StorageError as exc:
        raise storage_error(exc) from None
    ttl = ttl_s or (UPLOAD_TOKEN_TTL_S if op is FileOp.UPLOAD else DEFAULT_TOKEN_TTL_S)
    issued = int(now.timestamp())
    token = mint_token(
        storage.token_secret,
        volume=row.volume,
        folder_id=row.folder_id,
        op=op,
        path=path,
        ttl_s=ttl,
        now=issued,
    )
    return IssuedToken(
        token=token,
        url=info.public_url.rstrip("/"),
        op=op,
        path=path,
        expires_at=datetime.fromtimestamp(issued + ttl, UTC),
    )
