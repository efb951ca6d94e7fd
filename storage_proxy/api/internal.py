"""Internal API (manager and agents), authenticated by the cluster secret.

GET    /health                                   no auth
GET    /metrics                                  Prometheus text, no auth (metrics.py)
GET    /v1/info                                  public URL and volumes
POST   /v1/folders                               CreateFolderRequest → FolderInfo
DELETE /v1/folders/{volume}/{folder_id}          204 (idempotent)
GET    /v1/folders/{volume}/{folder_id}/usage    UsageResponse
PUT    /v1/folders/{volume}/{folder_id}/quota    SetQuotaRequest → UsageResponse
GET    /v1/folders/{volume}/{folder_id}/mount    MountInfo
POST   /v1/folders/{volume}/{folder_id}/files/{list,mkdir,move,delete}
"""

from __future__ import annotations

import hmac

from aiohttp import web

from storage_proxy import service
from storage_proxy.api.middleware import Handler, error_response, parse_body
from storage_proxy.contract import (
    CLUSTER_SECRET_HEADER,
    CreateFolderRequest,
    DeleteFilesRequest,
    ErrorCode,
    FileListResponse,
    MkdirRequest,
    MoveRequest,
    PathRequest,
    ProxyInfo,
    SetQuotaRequest,
)
from storage_proxy.volumes import Volumes

VOLUMES_KEY = web.AppKey("volumes", Volumes)
SECRET_KEY = web.AppKey("cluster_secret", str)
PUBLIC_URL_KEY = web.AppKey("public_url", str)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/v1/info", info)
    app.router.add_post("/v1/folders", create_folder)
    app.router.add_delete("/v1/folders/{volume}/{folder_id}", delete_folder)
    app.router.add_get("/v1/folders/{volume}/{folder_id}/usage", usage)
    app.router.add_put("/v1/folders/{volume}/{folder_id}/quota", set_quota)
    app.router.add_get("/v1/folders/{volume}/{folder_id}/mount", mount)
    app.router.add_post("/v1/folders/{volume}/{folder_id}/files/list", list_files)
    app.router.add_post("/v1/folders/{volume}/{folder_id}/files/mkdir", mkdir)
    app.router.add_post("/v1/folders/{volume}/{folder_id}/files/move", move)
    app.router.add_post("/v1/folders/{volume}/{folder_id}/files/delete", delete_files)


@web.middleware
async def secret_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in ("/health", "/metrics"):
        return await handler(request)
    expected = request.app[SECRET_KEY].encode()
    given = request.headers.get(CLUSTER_SECRET_HEADER, "").encode()
    # An unset secret locks the API instead of opening it.
    if not expected or not hmac.compare_digest(given, expected):
        return error_response(
            request, ErrorCode.UNAUTHORIZED, f"missing or wrong {CLUSTER_SECRET_HEADER}"
        )
    return await handler(request)


def _ref(request: web.Request) -> tuple[Volumes, str, str]:
    return (
        request.app[VOLUMES_KEY],
        request.match_info["volume"],
        request.match_info["folder_id"],
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def info(request: web.Request) -> web.Response:
    body = ProxyInfo(
        public_url=request.app[PUBLIC_URL_KEY], volumes=request.app[VOLUMES_KEY].info()
    )
    return web.json_response(body.model_dump(mode="json"))


async def create_folder(request: web.Request) -> web.Response:
    req = await parse_body(request, CreateFolderRequest)
    result = await service.create_folder(
        request.app[VOLUMES_KEY],
        volume=req.volume,
        folder_id=req.folder_id,
        quota_bytes=req.quota_bytes,
    )
    return web.json_response(result.model_dump(mode="json"), status=201)


async def delete_folder(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    await service.delete_folder(volumes, volume=volume, folder_id=folder_id)
    return web.Response(status=204)


async def usage(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    result = await service.get_usage(volumes, volume=volume, folder_id=folder_id)
    return web.json_response(result.model_dump(mode="json"))


async def set_quota(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    req = await parse_body(request, SetQuotaRequest)
    await service.set_quota(
        volumes, volume=volume, folder_id=folder_id, quota_bytes=req.quota_bytes
    )
    result = await service.get_usage(volumes, volume=volume, folder_id=folder_id)
    return web.json_response(result.model_dump(mode="json"))


async def mount(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    result = await service.mount_info(volumes, volume=volume, folder_id=folder_id)
    return web.json_response(result.model_dump(mode="json"))


async def list_files(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    req = await parse_body(request, PathRequest)
    folder = await service.open_folder(volumes, volume=volume, folder_id=folder_id)
    entries = await service.list_files(folder, path=req.path)
    return web.json_response(FileListResponse(entries=entries).model_dump(mode="json"))


async def mkdir(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    req = await parse_body(request, MkdirRequest)
    folder = await service.open_folder(volumes, volume=volume, folder_id=folder_id)
    await service.make_dir(folder, path=req.path, parents=req.parents)
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    req = await parse_body(request, MoveRequest)
    folder = await service.open_folder(volumes, volume=volume, folder_id=folder_id)
    await service.move(folder, src=req.src, dst=req.dst)
    return web.Response(status=204)


async def delete_files(request: web.Request) -> web.Response:
    volumes, volume, folder_id = _ref(request)
    req = await parse_body(request, DeleteFilesRequest)
    folder = await service.open_folder(volumes, volume=volume, folder_id=folder_id)
    await service.delete_files(folder, paths=req.paths, recursive=req.recursive)
    return web.Response(status=204)
