"""Compute sessions, their containers (each container row is also the usage record of its
allocation), and the status history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col, uuid_pk
from manager.db.models.tenancy import _enum
from manager.lifecycle.session import SessionResult, SessionStatus, SessionType


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_page", "created_at", "id"),  # cursor pagination order
        Index("ix_sessions_status_group", "status", "resource_group"),
        Index("ix_sessions_project_status", "project_id", "status"),
        Index(
            "ix_sessions_lease_due",
            "status",
            "lease_expires_at",
            postgresql_where=text("status IN ('scheduled','preparing','terminating')"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    domain_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("domains.id"), nullable=False
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id"), nullable=False, index=True
    )
    resource_group: Mapped[str] = mapped_column(String(64), nullable=False)
    type: Mapped[SessionType] = mapped_column(_enum(SessionType, "session_type"), nullable=False)
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    architecture: Mapped[str] = mapped_column(String(32), nullable=False)
    command: Mapped[list[str] | None] = mapped_column(JSONB, nullable=True)
    env: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    # Per container request, slot → amount as strings (exact decimals).
    containers_spec: Mapped[list[dict[str, str]]] = mapped_column(JSONB, nullable=False)
    multi_node: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    mounts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    ports: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    idle_timeout_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_duration_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_retries: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus, "session_status"), nullable=False, index=True
    )
    status_reason: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    status_message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    result: Mapped[SessionResult | None] = mapped_column(
        _enum(SessionResult, "session_result"), nullable=True
    )
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The planner's last word on a pending session: {code, message, queue_position, ...}.
    pending_verdict: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    waiting_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    terminated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Row lease of the loop working on this session (dispatch, terminate); see reconcilers/base.
    lease_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatch_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_col()


class SessionContainerRow(Base):
    __tablename__ = "session_containers"
    __table_args__ = (
        Index(
            "ix_session_containers_node_active",
            "node_id",
            postgresql_where=text("released_at IS NULL"),
        ),
        Index("ix_session_containers_usage", "allocated_at", "released_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    index: Mapped[int] = mapped_column(Integer, nullable=False)
    node_id: Mapped[str] = mapped_column(String(128), nullable=False)
    # Denormalised owner, so usage reports never join through sessions that may be purged.
    domain_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    project_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    resource_group: Mapped[str] = mapped_column(String(64), nullable=False)
    slots: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False)
    devices: Mapped[dict[str, list[str]]] = mapped_column(JSONB, nullable=False, default=dict)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="assigned")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    oom_killed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    ports: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    # The end of the container's output, kept when it is destroyed, so logs outlive containers.
    log_tail: Mapped[str | None] = mapped_column(Text, nullable=True)
    allocated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set exactly once, in the transaction that gives the resources back (never freed twice).
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_col()


class SessionHistoryRow(Base):
    __tablename__ = "session_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus, "session_status"), nullable=False
    )
    reason: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
