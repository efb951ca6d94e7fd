"""HTTP client the manager uses for the storage proxy's internal API (wire models from
storage_proxy.contract). Public-API tokens are minted locally with `contract.mint_token`."""

from __future__ import annotations

import json as json_module
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from storage_proxy.contract import (
    CLUSTER_SECRET_HEADER,
    CreateFolderRequest,
    DeleteFilesRequest,
    ErrorBody,
    FileEntry,
    FileListResponse,
    FolderInfo,
    MkdirRequest,
    MountInfo,
    MoveRequest,
    PathRequest,
    ProxyInfo,
    SetQuotaRequest,
    UsageResponse,
)

M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT_S = 30.0
CONNECTION_ERROR = "storage_proxy_unreachable"
BAD_RESPONSE = "bad_storage_proxy_response"


class StorageError(Exception):
    """A storage proxy call failed; `code` is the proxy's stable error code (or one of
    CONNECTION_ERROR / BAD_RESPONSE), `status` the HTTP status (None when none arrived)."""

    def __init__(self, code: str, message: str, status: int | None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class StorageProxyClient:
    def __init__(
        self,
        base_url: str,
        secret: str,
        http: aiohttp.ClientSession,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {CLUSTER_SECRET_HEADER: secret}
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def info(self) -> ProxyInfo:
        """Public URL (what clients are told) and the volumes with their capabilities."""
        return _parse(ProxyInfo, await self._request("GET", "/v1/info"))

    async def create_folder(
        self, volume: str, folder_id: str, *, quota_bytes: int | None = None
    ) -> FolderInfo:
        """Idempotent: creating an existing folder keeps its files and sets the quota."""
        body = CreateFolderRequest(volume=volume, folder_id=folder_id, quota_bytes=quota_bytes)
        data = await self._request("POST", "/v1/folders", json=body.model_dump(mode="json"))
        return _parse(FolderInfo, data)

    async def delete_folder(self, volume: str, folder_id: str) -> None:
        """Idempotent and crash-safe on the proxy side."""
        await self._request("DELETE", self._folder(volume, folder_id))

    async def usage(self, volume: str, folder_id: str) -> UsageResponse:
        data = await self._request("GET", self._folder(volume, folder_id) + "/usage")
        return _parse(UsageResponse, data)

    async def set_quota(
        self, volume: str, folder_id: str, quota_bytes: int | None
    ) -> UsageResponse:
        body = SetQuotaRequest(quota_bytes=quota_bytes).model_dump(mode="json")
        data = await self._request("PUT", self._folder(volume, folder_id) + "/quota", json=body)
        return _parse(UsageResponse, data)

    async def mount_info(self, volume: str, folder_id: str) -> MountInfo:
        data = await self._request("GET", self._folder(volume, folder_id) + "/mount")
        return _parse(MountInfo, data)

    async def list_files(self, volume: str, folder_id: str, path: str = "") -> list[FileEntry]:
        body = PathRequest(path=path).model_dump()
        data = await self._request(
            "POST", self._folder(volume, folder_id) + "/files/list", json=body
        )
        return _parse(FileListResponse, data).entries

    async def mkdir(
        self, volume: str, folder_id: str, path: str, *, parents: bool = False
    ) -> None:
        body = MkdirRequest(path=path, parents=parents).model_dump()
        await self._request("POST", self._folder(volume, folder_id) + "/files/mkdir", json=body)

    async def move(self, volume: str, folder_id: str, *, src: str, dst: str) -> None:
        body = MoveRequest(src=src, dst=dst).model_dump()
        await self._request("POST", self._folder(volume, folder_id) + "/files/move", json=body)

    async def delete_files(
        self, volume: str, folder_id: str, paths: list[str], *, recursive: bool = False
    ) -> None:
        body = DeleteFilesRequest(paths=paths, recursive=recursive).model_dump()
        await self._request("POST", self._folder(volume, folder_id) + "/files/delete", json=body)

    async def health(self) -> bool:
        try:
            await self._request("GET", "/health")
        except StorageError:
            return False
        return True

    def _folder(self, volume: str, folder_id: str) -> str:
        return f"/v1/folders/{volume}/{folder_id}"

    async def _request(self, method: str, path: str, *, json: Any = None) -> Any:
        try:
            async with self._http.request(
                method,
                self._base + path,
                json=json,
                headers=self._headers,
                timeout=self._timeout,
            ) as resp:
                raw = await resp.read()
                status = resp.status
                is_json = resp.content_type == "application/json"
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise StorageError(CONNECTION_ERROR, f"{method} {path}: {exc!r}", None) from None
        if status == 204:
            return None
        try:
            data = json_module.loads(raw) if is_json and raw else None
        except ValueError:
            data = None
        if status >= 400:
            try:
                err = ErrorBody.model_validate(data)
            except ValidationError:
                raise StorageError(
                    BAD_RESPONSE, f"{method} {path}: HTTP {status}", status
                ) from None
            raise StorageError(err.code, err.message, status)
        return data


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise StorageError(BAD_RESPONSE, f"unexpected response: {exc}", None) from None
