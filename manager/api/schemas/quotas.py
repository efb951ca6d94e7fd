"""Request and response models for quotas and usage."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from manager.api.schemas.common import ResponseModel, StrictModel

SlotName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
]


class QuotaSet(StrictModel):
    slots: dict[SlotName, str | int | float] = Field(
        default_factory=dict,
        max_length=64,
        description='Slot totals, e.g. {"cuda.device": 8, "mem": "256g"}; 0 forbids a slot.',
    )
    max_concurrent_sessions: int | None = Field(None, ge=0, le=1_000_000)
    max_pending_sessions: int | None = Field(None, ge=0, le=1_000_000)
    max_session_lifetime_s: int | None = Field(None, ge=60, le=365 * 86400)
    default_idle_timeout_s: int | None = Field(None, ge=60, le=30 * 86400)
    allowed_resource_groups: list[SlotName] | None = Field(None, max_length=256)


class ScopeQuery(StrictModel):
    project_id: uuid.UUID | None = Field(None, description="For kind=user_in_project.")


class QuotaOut(ResponseModel):
    scope: str
    slots: dict[str, Decimal] = Field(default_factory=dict)
    max_concurrent_sessions: int | None = None
    max_pending_sessions: int | None = None
    max_session_lifetime_s: int | None = None
    default_idle_timeout_s: int | None = None
    allowed_resource_groups: list[str] | None = None
    used: dict[str, Decimal] = Field(default_factory=dict)
    sessions: int = 0
    updated_at: datetime | None = None


class QuotaList(ResponseModel):
    items: list[QuotaOut]


class UsageQuery(StrictModel):
    start: datetime
    end: datetime | None = Field(None, description="Defaults to now.")
    group_by: Literal["user", "project"] = "project"


class UsageLineOut(ResponseModel):
    group_id: uuid.UUID
    name: str = ""
    sessions: int
    gpu_hours: dict[str, Decimal]
    cpu_hours: Decimal
    mem_gib_hours: Decimal
    slot_hours: dict[str, Decimal]


class UsageReport(ResponseModel):
    start: datetime
    end: datetime
    group_by: str
    items: list[UsageLineOut]
