"""Request ids, error mapping to `{"code","message","request_id"}`, and body parsing helpers.

The only place that knows HTTP statuses for domain error codes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from storage_proxy.contract import ErrorBody, ErrorCode, TokenError
from storage_proxy.errors import BadRequest, StorageDomainError

log = logging.getLogger(__name__)

REQUEST_ID_KEY = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-Id"

STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_MISSING: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_SCOPE: 403,
    ErrorCode.INVALID_PATH: 400,
    ErrorCode.SYMLINK_REFUSED: 403,
    ErrorCode.VOLUME_NOT_FOUND: 404,
    ErrorCode.FOLDER_NOT_FOUND: 404,
    ErrorCode.FOLDER_EXISTS: 409,
    ErrorCode.FILE_NOT_FOUND: 404,
    ErrorCode.FILE_EXISTS: 409,
    ErrorCode.NOT_A_DIRECTORY: 409,
    ErrorCode.IS_A_DIRECTORY: 409,
    ErrorCode.DIRECTORY_NOT_EMPTY: 409,
    ErrorCode.QUOTA_EXCEEDED: 413,
    ErrorCode.UNSUPPORTED: 422,
    ErrorCode.UPLOAD_NOT_FOUND: 404,
    ErrorCode.UPLOAD_OFFSET_MISMATCH: 409,
    ErrorCode.UPLOAD_TOO_LARGE: 413,
    ErrorCode.RANGE_NOT_SATISFIABLE: 416,
    ErrorCode.BACKEND_ERROR: 502,
    ErrorCode.INTERNAL: 500,
}
_CODE_BY_HTTP_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.UPLOAD_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


def error_response(
    request: web.Request, code: ErrorCode, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    body = ErrorBody(code=code.value, message=message, request_id=request_id(request))
    return web.json_response(
        body.model_dump(), status=STATUS_BY_CODE.get(code, 400), headers=headers
    )


def request_id(request: web.Request) -> str:
    rid = request.get(REQUEST_ID_KEY)
    return rid if isinstance(rid, str) else ""


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    rid = supplied if 0 < len(supplied) <= 64 and supplied.isprintable() else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = rid
    try:
        response = await handler(request)
    except StorageDomainError as exc:
        response = error_response(request, exc.code, exc.message)
    except TokenError as exc:
        response = error_response(request, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODE_BY_HTTP_STATUS.get(exc.status, ErrorCode.BAD_REQUEST)
        response = error_response(request, code, exc.reason)
        response.set_status(exc.status)
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, rid)
        response = error_response(request, ErrorCode.INTERNAL, "internal error")
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = rid
    return response


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Validate a JSON body into `model`; malformed input is a 400, never a 500."""
    try:
        raw: Any = await request.json()
    except ValueError:
        raise BadRequest("request body is not valid JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest(_validation_message(exc)) from None


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)
