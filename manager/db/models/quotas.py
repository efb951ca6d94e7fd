"""Resource policies (quota limits) per scope, and the live usage ledger per scope.

A scope key is "domain:<id>", "project:<id>", "user:<id>" or "user_in_project:<pid>/<uid>",
the same strings as the scheduler's `Scope`. `quota_usage` rows change only under their row
lock, inside the scheduler's commit and the release path, so no race exceeds a limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col


class ResourcePolicyRow(Base):
    __tablename__ = "resource_policies"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    # slot → amount (string); an absent slot is unlimited, "0" forbids it.
    slots: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    max_concurrent_sessions: Mapped[int | None] = mapped_column(Integer)
    max_pending_sessions: Mapped[int | None] = mapped_column(Integer)
    max_session_lifetime_s: Mapped[int | None] = mapped_column(Integer)
    default_idle_timeout_s: Mapped[int | None] = mapped_column(Integer)
    allowed_resource_groups: Mapped[list[str] | None] = mapped_column(JSONB)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at_col()


class QuotaUsageRow(Base):
    __tablename__ = "quota_usage"

    scope: Mapped[str] = mapped_column(String(160), primary_key=True)
    slots: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    sessions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
