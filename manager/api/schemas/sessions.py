"""Request and response models for sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from manager.api.schemas.common import ListQuery, ResponseModel, StrictModel
from manager.lifecycle.session import SessionResult, SessionStatus, SessionType

SessionName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
SlotName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
]
EnvName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
ImageName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$"),
]


class MountRequest(StrictModel):
    folder: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Virtual folder name or id."
    )
    path: Annotated[
        str, StringConstraints(min_length=2, max_length=512, pattern=r"^/[^\x00-\x1f]*$")
    ]
    mode: Annotated[str, StringConstraints(pattern=r"^(ro|rw)$")] = "rw"


def _default_resources() -> dict[str, str | int | float]:
    return {"cpu": 1, "mem": "1g"}


class SessionCreate(StrictModel):
    image: ImageName
    type: SessionType = SessionType.BATCH
    name: SessionName | None = None
    project_id: uuid.UUID | None = Field(None, description="Defaults to the caller's project.")
    resource_group: SessionName = "default"
    architecture: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,32}$")] = "x86_64"
    command: list[Annotated[str, StringConstraints(max_length=65536)]] | None = Field(
        None, max_length=1024
    )
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=65536)]] = Field(
        default_factory=dict, max_length=256
    )
    resources: dict[SlotName, str | int | float] = Field(
        default_factory=_default_resources,
        max_length=32,
        description="Per container: cpu (cores), mem (bytes or 512m/4g), accelerator slots.",
    )
    containers: int = Field(1, ge=1, le=64)
    multi_node: bool = False
    mounts: list[MountRequest] = Field(default_factory=list, max_length=32)
    priority: int = Field(0, ge=-1000, le=1000)
    tags: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    idle_timeout_s: int | None = Field(None, ge=10, le=30 * 86400)
    max_duration_s: int | None = Field(None, ge=1, le=365 * 86400)
    max_retries: int = Field(0, ge=0, le=10)

    @field_validator("resources")
    @classmethod
    def _finite(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name, amount in value.items():
            if isinstance(amount, float) and (
                amount != amount or amount in (float("inf"), -float("inf"))
            ):
                raise ValueError(f"{name} must be a finite number")
        return value


class VerdictOut(ResponseModel):
    code: str
    message: str
    queue_position: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = None


class ContainerOut(ResponseModel):
    id: str
    index: int
    attempt: int
    node_id: str
    state: str
    slots: dict[str, Decimal]
    devices: dict[str, list[str]]
    ports: list[dict[str, Any]]
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None


class SessionOut(ResponseModel):
    id: uuid.UUID
    name: str
    type: SessionType
    status: SessionStatus
    status_reason: str
    status_message: str
    result: SessionResult | None
    exit_code: int | None
    image: str
    command: list[str] | None
    resource_group: str
    domain_id: uuid.UUID
    project_id: uuid.UUID
    user_id: uuid.UUID
    resources: dict[str, Decimal]
    containers: int
    multi_node: bool
    priority: int
    tags: list[str]
    mounts: list[dict[str, Any]]
    idle_timeout_s: int | None
    max_duration_s: int | None
    max_retries: int
    attempt: int
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    terminated_at: datetime | None
    pending: VerdictOut | None = None
    container_list: list[ContainerOut] = Field(default_factory=list)


class SessionFilter(ListQuery):
    status: list[SessionStatus] | SessionStatus | None = None
    project_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    type: SessionType | None = None
    name: str | None = Field(None, max_length=64)
    all: bool = Field(False, description="Include terminal sessions.")


class HistoryOut(ResponseModel):
    status: SessionStatus
    reason: str
    message: str
    at: datetime


class HistoryList(ResponseModel):
    items: list[HistoryOut]


class TerminateQuery(StrictModel):
    force: bool = False


class LogsQuery(StrictModel):
    follow: bool = False
    container: int = Field(0, ge=0, le=63)
