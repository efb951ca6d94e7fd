"""Which projects may run an image. An image with no rule row may be used by every project; a rule
row with no project rows may be used by none (an admin's way to withdraw an image)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base


class ImageRuleRow(Base):
    __tablename__ = "image_rules"

    image: Mapped[str] = mapped_column(String(512), primary_key=True)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ImageRuleProjectRow(Base):
    __tablename__ = "image_rule_projects"

    image: Mapped[str] = mapped_column(
        String(512), ForeignKey("image_rules.image", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
