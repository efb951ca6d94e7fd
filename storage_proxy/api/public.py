"""Public API (browsers, CLI, SDK), authorised by manager-minted tokens.

A token travels as `Authorization: Bearer <token>` or `?token=`. Uploads speak tus 1.0 (core +
creation + termination):

    OPTIONS *                       CORS preflight and tus discovery (no token)
    POST    /v1/upload              Upload-Length, Upload-Metadata (path/filename) → 201 Location
    HEAD    /v1/upload/{id}         Upload-Offset, Upload-Length
    PATCH   /v1/upload/{id}         application/offset+octet-stream at Upload-Offset → 204
    DELETE  /v1/upload/{id}         abort → 204
    GET     /v1/download?path=      file bytes; single `Range: bytes=` supported (206)
    GET     /v1/archive?path=       streamed tar of a directory
    GET     /v1/files?path=         FileListResponse
    POST    /v1/mkdir  /v1/move  /v1/delete   JSON bodies as on the internal API
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from storage_proxy import service
from storage_proxy.api.internal import VOLUMES_KEY
from storage_proxy.api.middleware import Handler, parse_body
from storage_proxy.api.splice import RequestBody, close_after_splice
from storage_proxy.backends.base import LocalFileSupport
from storage_proxy.contract import (
    DeleteFilesRequest,
    ErrorCode,
    FileListResponse,
    FileOp,
    MkdirRequest,
    MoveRequest,
    TokenClaims,
    TokenError,
    verify_token,
)
from storage_proxy.errors import BadRequest, StorageDomainError
from storage_proxy.metrics import count_download

log = logging.getLogger(__name__)

TOKEN_SECRET_KEY = web.AppKey("token_secret", str)
CORS_ORIGINS_KEY = web.AppKey("cors_origins", list)
ARCHIVE_MAX_FILES_KEY = web.AppKey("archive_max_files", int)
PENDING_WRITES_KEY: web.AppKey[set[asyncio.Task[Any]]] = web.AppKey("pending_writes")

TUS_VERSION = "1.0.0"
TUS_HEADERS = {"Tus-Resumable": TUS_VERSION}
_EXPOSE = (
    "Location, Upload-Offset, Upload-Length, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Content-Range, Content-Length, Accept-Ranges, Content-Disposition, X-Request-Id"
)
_ALLOW_HEADERS = (
    "Authorization, Content-Type, Upload-Offset, Upload-Length, Upload-Metadata, "
    "Tus-Resumable, Range, X-Request-Id, X-HTTP-Method-Override"
)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/upload", upload_create)
    app.router.add_route("HEAD", "/v1/upload/{upload_id}", upload_head)
    app.router.add_patch("/v1/upload/{upload_id}", upload_patch)
    app.router.add_delete("/v1/upload/{upload_id}", upload_delete)
    app.router.add_get("/v1/download", download)
    app.router.add_get("/v1/archive", archive)
    app.router.add_get("/v1/files", list_files)
    app.router.add_post("/v1/mkdir", mkdir)
    app.router.add_post("/v1/move", move)
    app.router.add_post("/v1/delete", delete_files)
    app.on_response_prepare.append(_cors_headers)
    app.on_response_prepare.append(close_after_splice)
    app[PENDING_WRITES_KEY] = set()
    app.on_shutdown.append(_drain_writes)


async def _drain_writes(app: web.Application) -> None:
    """Let upload writes whose clients left finish persisting before volumes close."""
    pending: set[asyncio.Task[Any]] = app[PENDING_WRITES_KEY]
    if pending:
        await asyncio.wait(set(pending), timeout=30)


@web.middleware
async def preflight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": "creation,termination",
                **TUS_HEADERS,
            },
        )
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    allowed = request.app[CORS_ORIGINS_KEY]
    if not origin:
        return
    if "*" in allowed:
        response.headers["Access-Control-Allow-Origin"] = "*"
    elif origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    else:
        return
    response.headers["Access-Control-Expose-Headers"] = _EXPOSE


def _claims(request: web.Request) -> TokenClaims:
    auth = request.headers.get("Authorization", "")
    token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.query.get("token")
    if not token:
        raise TokenError(ErrorCode.TOKEN_MISSING, "a token is required (Authorization: Bearer)")
    return verify_token(request.app[TOKEN_SECRET_KEY], token)


def _int_header(request: web.Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None or not raw.isdigit():
        raise BadRequest(f"{name} header must be a non-negative integer")
    return int(raw)


def parse_upload_metadata(raw: str) -> dict[str, str]:
    """tus Upload-Metadata: comma-separated `key base64(value)` pairs."""
    result: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        key, _, value = pair.partition(" ")
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode() if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 UTF-8") from None
    return result


# ---------------------------------------------------------------- tus


async def upload_create(request: web.Request) -> web.Response:
    claims = _claims(request)
    length = _int_header(request, "Upload-Length")
    metadata = parse_upload_metadata(request.headers.get("Upload-Metadata", ""))
    state = await service.create_upload(
        request.app[VOLUMES_KEY], claims, length=length, metadata=metadata
    )
    headers = {
        **TUS_HEADERS,
        "Location": f"/v1/upload/{state.upload_id}",
        "Upload-Offset": str(state.offset),
    }
    return web.Response(status=201, headers=headers)


async def upload_head(request: web.Request) -> web.Response:
    state = await service.upload_status(
        request.app[VOLUMES_KEY], _claims(request), upload_id=request.match_info["upload_id"]
    )
    headers = {
        **TUS_HEADERS,
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.length),
        "Cache-Control": "no-store",
    }
    return web.Response(status=200, headers=headers)


async def upload_patch(request: web.Request) -> web.Response:
    claims = _claims(request)
    if request.content_type != "application/offset+octet-stream":
        raise StorageDomainError(
            "PATCH body must be application/offset+octet-stream",
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        )
    offset = _int_header(request, "Upload-Offset")
    write = asyncio.create_task(
        service.write_upload(
            request.app[VOLUMES_KEY],
            claims,
            upload_id=request.match_info["upload_id"],
            offset=offset,
            chunks=RequestBody(request),
        )
    )
    try:
        # Shielded: when aiohttp cancels the handler because the client went away, the write
        # still drains what arrived and persists it, so the client can resume after it.
        state = await asyncio.shield(write)
    except asyncio.CancelledError:
        pending = request.app[PENDING_WRITES_KEY]
        pending.add(write)
        write.add_done_callback(_forget_write(pending))
        raise
    return web.Response(status=204, headers={**TUS_HEADERS, "Upload-Offset": str(state.offset)})


def _forget_write(pending: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("interrupted upload write ended: %r", task.exception())

    return done


async def upload_delete(request: web.Request) -> web.Response:
    await service.abort_upload(
        request.app[VOLUMES_KEY], _claims(request), upload_id=request.match_info["upload_id"]
    )
    return web.Response(status=204, headers=TUS_HEADERS)


# ---------------------------------------------------------------- downloads


async def download(request: web.Request) -> web.StreamResponse:
    result = await service.download(
        request.app[VOLUMES_KEY],
        _claims(request),
        path=request.query.get("path", ""),
        range_header=request.headers.get("Range"),
    )
    response = web.StreamResponse(status=206 if result.partial else 200)
    response.content_type = "application/octet-stream"
    response.content_length = result.end - result.start
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Disposition"] = _disposition(result.entry.name)
    if result.partial:
        response.headers["Content-Range"] = (
            f"bytes {result.start}-{result.end - 1}/{result.entry.size}"
        )
    if isinstance(result.folder, LocalFileSupport):
        await _sendfile(request, response, result)
        return response
    body = result.body()
    # Pull the first chunk before sending headers, so a refused read is still a JSON error.
    first = await anext(body, b"")
    await response.prepare(request)
    await _stream(request, response, _chain(first, body))
    return response


async def _sendfile(
    request: web.Request, response: web.StreamResponse, result: service.Download
) -> None:
    """Zero-copy download of a local file (opened before the headers go out)."""
    assert isinstance(result.folder, LocalFileSupport)
    fobj = await result.folder.open_local(result.path)
    try:
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            return
        count = result.end - result.start
        sent = await asyncio.get_running_loop().sendfile(transport, fobj, result.start, count)
        count_download(request, sent)
        if sent < count:
            # The file shrank since it was measured: fail the transfer rather than hang.
            log.warning("download of %s cut short: file shrank", result.path)
            transport.close()
            return
        await response.write_eof()
    finally:
        await asyncio.to_thread(fobj.close)


async def archive(request: web.Request) -> web.StreamResponse:
    name, body = await service.archive(
        request.app[VOLUMES_KEY],
        _claims(request),
        path=request.query.get("path", ""),
        max_files=request.app[ARCHIVE_MAX_FILES_KEY],
    )
    first = await anext(body, b"")
    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    response.headers["Content-Disposition"] = _disposition(f"{name}.tar")
    response.enable_chunked_encoding()
    await response.prepare(request)
    await _stream(request, response, _chain(first, body))
    return response


async def _stream(
    request: web.Request, response: web.StreamResponse, body: AsyncIterator[bytes]
) -> None:
    try:
        async for chunk in body:
            await response.write(chunk)
            count_download(request, len(chunk))
    except StorageDomainError as exc:
        # Headers are gone; cut the connection so the client sees a failed, not a short, file.
        log.warning("stream of %s aborted: %s", request.path, exc.message)
        if request.transport is not None:
            request.transport.close()
        return
    await response.write_eof()


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _disposition(filename: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(filename, safe='')}"


# ---------------------------------------------------------------- file operations


async def list_files(request: web.Request) -> web.Response:
    path = request.query.get("path", "")
    folder, (clean,) = await service.authorized_folder(
        request.app[VOLUMES_KEY], _claims(request), op=FileOp.LIST, paths=[path]
    )
    entries = await service.list_files(folder, path=clean)
    return web.json_response(FileListResponse(entries=entries).model_dump(mode="json"))


async def mkdir(request: web.Request) -> web.Response:
    claims = _claims(request)
    req = await parse_body(request, MkdirRequest)
    folder, (path,) = await service.authorized_folder(
        request.app[VOLUMES_KEY], claims, op=FileOp.MKDIR, paths=[req.path]
    )
    await service.make_dir(folder, path=path, parents=req.parents)
    return web.Response(status=204)


async def move(request: web.Request) -> web.Response:
    claims = _claims(request)
    req = await parse_body(request, MoveRequest)
    folder, (src, dst) = await service.authorized_folder(
        request.app[VOLUMES_KEY], claims, op=FileOp.MOVE, paths=[req.src, req.dst]
    )
    await service.move(folder, src=src, dst=dst)
    return web.Response(status=204)


async def delete_files(request: web.Request) -> web.Response:
    claims = _claims(request)
    req = await parse_body(request, DeleteFilesRequest)
    folder, paths = await service.authorized_folder(
        request.app[VOLUMES_KEY], claims, op=FileOp.DELETE, paths=req.paths
    )
    await service.delete_files(folder, paths=paths, recursive=req.recursive)
    return web.Response(status=204)
