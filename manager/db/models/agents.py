"""Nodes (one agent each): what they report, whether the scheduler may use them, and what the
manager has allocated on them. `allocated` is the scheduler's ledger, changed only under this
row's lock, so two managers can never over-commit a node."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col
from manager.db.models.tenancy import _enum


class AgentStatus(enum.StrEnum):
    ALIVE = "alive"
    LOST = "lost"


class AgentRow(Base):
    __tablename__ = "agents"
    # Cursor pagination walks (created_at, id); rows created in one transaction share
    # created_at, so the index must cover both to avoid sorting the whole table.
    __table_args__ = (Index("ix_agents_page", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    resource_group: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    advertised_url: Mapped[str] = mapped_column(String(512), nullable=False)
    architecture: Mapped[str] = mapped_column(String(32), nullable=False)
    runtime: Mapped[str] = mapped_column(String(32), nullable=False)
    agent_version: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    status: Mapped[AgentStatus] = mapped_column(
        _enum(AgentStatus, "agent_status"), nullable=False, default=AgentStatus.ALIVE
    )
    cordoned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    draining: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The agent's last report, verbatim apart from containers (which live in their own rows).
    capacity: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    images: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    runtime_health: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    plugin_errors: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    reported_containers: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list
    )
    # Ledger: {"slots": {slot: amount}, "devices": {device_id: {slot: amount}}}, amounts as str.
    allocated: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    last_heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lost_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = created_at_col()
