"""Virtual folders: create, list, share, list files, and move bytes through the storage proxy
(resumable tus uploads, ranged downloads) with tokens the manager mints per operation.

The folder models carry enums defined next to the manager's ORM models (see admin.py), so they
are imported inside the methods."""

from __future__ import annotations

import builtins
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from client.sdk import transfer
from client.sdk.errors import BerthAPIError

if TYPE_CHECKING:
    from client.sdk.client import AsyncBerth
    from manager.api.schemas.vfolders import FolderTokenOut, ShareOut, VFolderOut
    from storage_proxy.contract import FileEntry

V1 = "/api/v1/vfolders"


class VFolders:
    def __init__(self, api: AsyncBerth) -> None:
        self._api = api

    def list(self, *, with_usage: bool = False) -> AsyncIterator[VFolderOut]:
        from manager.api.schemas.vfolders import VFolderOut

        return self._api.paginate(V1, VFolderOut, {"with_usage": with_usage or None})

    async def resolve(self, ref: str) -> str:
        """A folder id from an id or a name (your own folder first, then any you can see)."""
        with contextlib.suppress(ValueError):
            return str(uuid.UUID(ref))
        matches = [f async for f in self.list() if f.name == ref]
        if not matches:
            raise BerthAPIError("not_found", f"no virtual folder named {ref!r}", 404)
        matches.sort(key=lambda f: f.ownership != "owner")
        return str(matches[0].id)

    async def get(self, ref: str) -> VFolderOut:
        from manager.api.schemas.vfolders import VFolderOut

        return VFolderOut.model_validate(await self._api.get(await self._path(ref)))

    async def create(self, **fields: Any) -> VFolderOut:
        from manager.api.schemas.vfolders import VFolderCreate, VFolderOut

        body = VFolderCreate.model_validate(fields).model_dump(mode="json", exclude_unset=True)
        return VFolderOut.model_validate(await self._api.post(V1, body))

    async def delete(self, ref: str, *, force: bool = False) -> None:
        await self._api.delete(await self._path(ref), params={"force": force or None})

    async def share(
        self,
        ref: str,
        *,
        username: str | None = None,
        project_id: str | None = None,
        mode: str = "ro",
    ) -> ShareOut:
        from manager.api.schemas.vfolders import ShareCreate, ShareOut

        fields: dict[str, Any] = {"mode": mode}
        if username:
            fields["username"] = username
        if project_id:
            fields["project_id"] = project_id
        body = ShareCreate.model_validate(fields).model_dump(mode="json", exclude_none=True)
        answer = await self._api.post(await self._path(ref, "shares"), body)
        return ShareOut.model_validate(answer)

    async def shares(self, ref: str) -> builtins.list[ShareOut]:
        from manager.api.schemas.vfolders import ShareList

        return ShareList.model_validate(await self._api.get(await self._path(ref, "shares"))).items

    async def unshare(self, ref: str, share_id: str) -> None:
        await self._api.delete(await self._path(ref, f"shares/{quote(share_id, safe='')}"))

    async def files(self, ref: str, path: str = "") -> builtins.list[FileEntry]:
        from manager.api.schemas.vfolders import FileList

        answer = await self._api.get(await self._path(ref, "files"), params={"path": path})
        return FileList.model_validate(answer).entries

    async def token(self, ref: str, *, op: str, path: str | None = None) -> FolderTokenOut:
        """A storage-proxy URL and a token for one operation on the folder."""
        from manager.api.schemas.vfolders import FolderTokenOut

        body: dict[str, Any] = {"op": op}
        if path is not None:
            body["path"] = path
        return FolderTokenOut.model_validate(
            await self._api.post(await self._path(ref, "token"), body)
        )

    async def upload(
        self,
        ref: str,
        local: Path,
        remote: str,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Upload a file (resuming an interrupted upload of the same file); bytes stored."""
        folder = await self.resolve(ref)
        return await transfer.upload(
            self._grants(folder, remote),
            key=f"{self._api.endpoint}|{folder}|{remote}",
            local=local,
            remote=remote,
            progress=progress,
        )

    async def download(
        self,
        ref: str,
        remote: str,
        local: Path,
        *,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> int:
        """Download a file (continuing a `.part` file left by an interrupted run)."""
        folder = await self.resolve(ref)
        return await transfer.download(
            self._grants(folder, remote), remote=remote, local=local, progress=progress
        )

    def _grants(self, folder: str, path: str) -> transfer.TokenSource:
        async def grant(op: str) -> transfer.Grant:
            issued = await self.token(folder, op=op, path=path)
            return transfer.Grant(url=issued.url, token=issued.token)

        return grant

    async def _path(self, ref: str, tail: str | None = None) -> str:
        base = f"{V1}/{await self.resolve(ref)}"
        return f"{base}/{tail}" if tail else base
