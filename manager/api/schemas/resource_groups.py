"""Request and response models for resource groups."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from manager.api.schemas.common import ResponseModel, StrictModel
from manager.api.schemas.tenancy import Description, Name

Policy = Literal["fifo", "priority", "drf"]
Placement = Literal["binpack", "spread"]


class ResourceGroupCreate(StrictModel):
    name: Name
    description: Description = ""
    scheduling_policy: Policy = "fifo"
    placement: Placement = "binpack"
    backfill_wait_s: int = Field(600, ge=0, le=7 * 86400)
    project_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10000)


class ResourceGroupUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    scheduling_policy: Policy | None = None
    placement: Placement | None = None
    backfill_wait_s: int | None = Field(None, ge=0, le=7 * 86400)
    project_ids: list[uuid.UUID] | None = Field(None, max_length=10000)


class ResourceGroupOut(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    scheduling_policy: str
    placement: str
    backfill_wait_s: int
    project_ids: list[uuid.UUID] = Field(default_factory=list)
    created_at: datetime
