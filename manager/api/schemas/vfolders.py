"""Request and response models for virtual folders, their shares, files and access tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, StringConstraints, model_validator

from manager.api.schemas.common import ListQuery, ResponseModel, StrictModel
from manager.db.models import ShareMode, VFolderStatus
from storage_proxy.contract import VOLUME_NAME_PATTERN, FileEntry, FileOp

FolderName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
RelPath = Annotated[str, StringConstraints(max_length=4096)]
MAX_TOKEN_TTL_S = 24 * 3600


class VFolderCreate(StrictModel):
    name: FolderName
    volume: Annotated[str, StringConstraints(pattern=VOLUME_NAME_PATTERN)] | None = Field(
        None, description="Volume of the storage proxy; defaults to its first volume."
    )
    project_id: uuid.UUID | None = Field(
        None, description="Owned by this project (you must be its admin); default: by you."
    )
    quota_bytes: int | None = Field(
        None, ge=0, description="Largest total size of the folder's files; None: no limit."
    )


class VFolderUpdate(StrictModel):
    name: FolderName | None = None
    quota_bytes: int | None = Field(None, ge=0, description="null removes the limit.")


class VFolderFilter(ListQuery):
    with_usage: bool = Field(
        False, description="Ask the storage proxy for each folder's usage (slower)."
    )


class DeleteQuery(StrictModel):
    force: bool = Field(
        False, description="Delete even while sessions that mount the folder are running."
    )


class OwnerOut(ResponseModel):
    kind: Literal["user", "project"]
    id: uuid.UUID


class UsageOut(ResponseModel):
    used_bytes: int
    file_count: int
    reserved_bytes: int
    quota_bytes: int | None


class VFolderOut(ResponseModel):
    id: uuid.UUID
    name: str
    volume: str
    owner: OwnerOut
    ownership: Literal["owner", "project", "shared", "admin"] = Field(
        description="Why you can see it: you own it, your project owns it, it is shared with "
        "you, or you administer its owner."
    )
    permission: ShareMode = Field(description="What you may do with its files.")
    can_manage: bool = Field(description="Whether you may rename, share and delete it.")
    quota_bytes: int | None
    status: VFolderStatus
    created_at: datetime
    usage: UsageOut | None = Field(None, description="From the storage proxy, when asked for.")
    used_bytes: int | None = None


class ShareCreate(StrictModel):
    user_id: uuid.UUID | None = None
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    project_id: uuid.UUID | None = None
    mode: ShareMode = Field(
        ShareMode.RO, validation_alias=AliasChoices("mode", "permission"), description="ro|rw"
    )

    @model_validator(mode="after")
    def _one_target(self) -> ShareCreate:
        given = [v for v in (self.user_id, self.username, self.project_id) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of user_id, username, project_id")
        return self


class ShareOut(ResponseModel):
    id: uuid.UUID
    vfolder_id: uuid.UUID
    user_id: uuid.UUID | None
    project_id: uuid.UUID | None
    mode: ShareMode
    created_at: datetime


class ShareList(ResponseModel):
    items: list[ShareOut]


class FilesQuery(StrictModel):
    path: RelPath = ""


class FileList(ResponseModel):
    entries: list[FileEntry]


class MkdirBody(StrictModel):
    path: RelPath
    parents: bool = False


class MoveBody(StrictModel):
    src: RelPath
    dst: RelPath


class DeleteFilesBody(StrictModel):
    paths: list[RelPath] = Field(min_length=1, max_length=1000)
    recursive: bool = False


class TokenRequest(StrictModel):
    op: FileOp = Field(description="The one operation the token allows.")
    path: RelPath | None = Field(
        None, description="Limit the token to this path and below; None: the whole folder."
    )
    ttl_s: int | None = Field(
        None, ge=10, le=MAX_TOKEN_TTL_S, description="Lifetime; default 5 min (uploads: 1 h)."
    )


class FolderTokenOut(ResponseModel):
    token: str
    url: str = Field(description="Base URL of the storage proxy's public API.")
    op: FileOp
    path: str | None
    expires_at: datetime


class DeleteAccepted(ResponseModel):
    id: uuid.UUID
    status: VFolderStatus
    message: str
