"""Response models for nodes (agents)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from manager.api.schemas.common import ListQuery, ResponseModel, StrictModel
from manager.db.models import AgentStatus


class AgentOut(ResponseModel):
    id: str
    resource_group: str
    advertised_url: str
    architecture: str
    runtime: str
    agent_version: str
    status: AgentStatus
    cordoned: bool
    draining: bool
    capacity: dict[str, Decimal]
    allocated: dict[str, Decimal] = Field(default_factory=dict)
    utilisation: dict[str, Decimal] = Field(default_factory=dict, description="0..1 per slot.")
    devices: list[dict[str, Any]]
    device_allocated: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    runtime_health: dict[str, Any]
    plugin_errors: dict[str, Any]
    containers: int
    last_heartbeat_at: datetime
    lost_at: datetime | None
    created_at: datetime


class AgentFilter(ListQuery):
    resource_group: str | None = Field(None, max_length=64)
    status: AgentStatus | None = None


class HeartbeatAck(ResponseModel):
    ok: bool = True
    orphans: list[str] = Field(default_factory=list)


class EventsAck(ResponseModel):
    applied: int


class CordonRequest(StrictModel):
    cordoned: bool = True
