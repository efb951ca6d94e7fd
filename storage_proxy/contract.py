"""Wire contract of the storage proxy, shared with the manager (stdlib + pydantic + pyjwt only).

Two surfaces:
- the internal API (manager and agents), authenticated by the cluster secret sent in
  `X-Berth-Cluster-Secret`;
- the public API (browsers, CLI, SDK), authorised by short-lived JWTs that the manager mints with
  `mint_token` and the proxy checks with `verify_token`. A token names one volume, one folder, one
  operation and optionally a path prefix, so a leaked token opens very little for very little time.
"""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CLUSTER_SECRET_HEADER = "X-Berth-Cluster-Secret"
TOKEN_ALGORITHM = "HS256"
# Long enough for a browser to start a transfer, short enough that a leaked URL soon goes stale.
DEFAULT_TOKEN_TTL_S = 300
# A resumable upload may pause for a while; the manager may mint longer upload tokens than this.
MAX_TOKEN_TTL_S = 7 * 24 * 3600
FOLDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
VOLUME_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ErrorCode(StrEnum):
    """Stable error codes of both APIs (the `code` of every error body)."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHORIZED = "unauthorized"
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_SCOPE = "token_scope"
    INVALID_PATH = "invalid_path"
    SYMLINK_REFUSED = "symlink_refused"
    VOLUME_NOT_FOUND = "volume_not_found"
    FOLDER_NOT_FOUND = "folder_not_found"
    FOLDER_EXISTS = "folder_exists"
    FILE_NOT_FOUND = "file_not_found"
    FILE_EXISTS = "file_exists"
    NOT_A_DIRECTORY = "not_a_directory"
    IS_A_DIRECTORY = "is_a_directory"
    DIRECTORY_NOT_EMPTY = "directory_not_empty"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNSUPPORTED = "unsupported"
    UPLOAD_NOT_FOUND = "upload_not_found"
    UPLOAD_OFFSET_MISMATCH = "upload_offset_mismatch"
    UPLOAD_TOO_LARGE = "upload_too_large"
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable"
    BACKEND_ERROR = "backend_error"
    INTERNAL = "internal"


class ErrorBody(BaseModel):
    """Body of every non-2xx response of either API."""

    code: str
    message: str
    request_id: str


class FileOp(StrEnum):
    """The one operation a public token allows."""

    UPLOAD = "upload"
    DOWNLOAD = "download"
    LIST = "list"
    MKDIR = "mkdir"
    MOVE = "move"
    DELETE = "delete"
    ARCHIVE = "archive"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- tokens


class TokenClaims(_Model):
    """What a verified public token allows."""

    volume: str
    folder_id: str
    op: FileOp
    path: str | None = Field(
        default=None, description="Relative path prefix the token is limited to; None = folder."
    )
    expires_at: int = Field(description="Unix time after which the token is refused.")


class TokenError(Exception):
    """A public token was refused; `code` is TOKEN_INVALID or TOKEN_EXPIRED."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def mint_token(
    secret: str,
    *,
    volume: str,
    folder_id: str,
    op: FileOp | str,
    path: str | None = None,
    ttl_s: int = DEFAULT_TOKEN_TTL_S,
    now: float | None = None,
) -> str:
    """Sign a token for one operation on one folder (optionally below `path`), valid `ttl_s`."""
    if not secret:
        raise ValueError("token secret must not be empty")
    if not 0 < ttl_s <= MAX_TOKEN_TTL_S:
        raise ValueError(f"ttl_s must be in (0, {MAX_TOKEN_TTL_S}]")
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "vol": volume,
        "fid": folder_id,
        "op": FileOp(op).value,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    if path is not None:
        claims["path"] = path
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


def verify_token(secret: str, token: str, *, now: float | None = None) -> TokenClaims:
    """Check signature and expiry; raise TokenError. Scope checks are the caller's."""
    try:
        raw = jwt.decode(
            token,
            secret,
            algorithms=[TOKEN_ALGORITHM],
            options={"require": ["exp", "vol", "fid", "op"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(ErrorCode.TOKEN_INVALID, f"token refused: {exc}") from None
    current = now if now is not None else time.time()
    exp = raw.get("exp")
    if not isinstance(exp, int):
        raise TokenError(ErrorCode.TOKEN_INVALID, "token expiry is not an integer")
    if current >= exp:
        raise TokenError(ErrorCode.TOKEN_EXPIRED, "token has expired")
    try:
        return TokenClaims(
            volume=raw["vol"],
            folder_id=raw["fid"],
            op=raw["op"],
            path=raw.get("path"),
            expires_at=exp,
        )
    except ValidationError as exc:
        raise TokenError(ErrorCode.TOKEN_INVALID, f"token claims are malformed: {exc}") from None


# ---------------------------------------------------------------- internal API models


class CreateFolderRequest(_Model):
    volume: str = Field(pattern=VOLUME_NAME_PATTERN)
    folder_id: str = Field(pattern=FOLDER_ID_PATTERN)
    quota_bytes: int | None = Field(default=None, ge=0, description="None = no limit.")


class FolderInfo(_Model):
    volume: str
    folder_id: str
    quota_bytes: int | None


class SetQuotaRequest(_Model):
    quota_bytes: int | None = Field(ge=0, description="None removes the limit.")


class UsageResponse(_Model):
    used_bytes: int = Field(description="Bytes of files in the folder.")
    file_count: int
    reserved_bytes: int = Field(description="Declared bytes of unfinished uploads.")
    quota_bytes: int | None


class FuseMountSpec(_Model):
    """How a node mounts an S3 folder before bind-mounting it (see storage_proxy.fuse)."""

    driver: Literal["weed"] = "weed"
    filer: str = Field(description="SeaweedFS filer address host:port the node can reach.")
    filer_path: str = Field(description="Remote path of the folder on the filer.")


class MountInfo(_Model):
    """Where a folder lives on a node; the agent bind-mounts `host_path` into containers."""

    volume: str
    folder_id: str
    host_path: str
    kind: Literal["bind", "fuse"] = Field(
        description="bind: host_path exists on every node; fuse: mount `fuse` there first."
    )
    fuse: FuseMountSpec | None = None


class FileKind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    OTHER = "other"


class FileEntry(_Model):
    path: str = Field(description="Path relative to the folder root, '/'-separated.")
    name: str
    kind: FileKind
    size: int
    modified_at: datetime | None = None


class FileListResponse(_Model):
    entries: list[FileEntry]


class PathRequest(_Model):
    path: str = ""


class MkdirRequest(_Model):
    path: str
    parents: bool = False


class MoveRequest(_Model):
    src: str
    dst: str


class DeleteFilesRequest(_Model):
    paths: list[str] = Field(min_length=1)
    recursive: bool = False


class VolumeInfo(_Model):
    name: str
    backend: str
    capabilities: list[str] = Field(description="Optional capabilities, e.g. 'quota'.")


class ProxyInfo(_Model):
    public_url: str = Field(description="Base URL clients use for the public API.")
    volumes: list[VolumeInfo]


# ---------------------------------------------------------------- public API models


class UploadStatus(_Model):
    upload_id: str
    path: str
    length: int
    offset: int
    completed: bool
