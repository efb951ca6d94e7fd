"""Resource groups: named node pools, their scheduling policy, and the projects that may use
them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col, uuid_pk


class ResourceGroupRow(Base):
    __tablename__ = "resource_groups"
    # Cursor pagination walks (created_at, id); rows created in one transaction share
    # created_at, so the index must cover both to avoid sorting the whole table.
    __table_args__ = (Index("ix_resource_groups_page", "created_at", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Stored as plain strings validated by the API models; the scheduler owns their meaning.
    scheduling_policy: Mapped[str] = mapped_column(String(16), nullable=False, default="fifo")
    placement: Mapped[str] = mapped_column(String(16), nullable=False, default="binpack")
    backfill_wait_s: Mapped[int] = mapped_column(Integer, nullable=False, default=600)
    created_at: Mapped[datetime] = created_at_col()


class ResourceGroupProjectRow(Base):
    __tablename__ = "resource_group_projects"

    resource_group_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("resource_groups.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
