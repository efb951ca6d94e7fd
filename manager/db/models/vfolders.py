"""Virtual folders (their bytes live on the storage proxy) and who they are shared with."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col, uuid_pk
from manager.db.models.tenancy import _enum


class VFolderStatus(enum.StrEnum):
    READY = "ready"
    # Committed before the proxy is asked to delete: a crash leaves a row the cleanup loop
    # finishes, never a row pointing at a folder that is gone (or files nobody owns).
    DELETING = "deleting"


class ShareMode(enum.StrEnum):
    RO = "ro"
    RW = "rw"


class VFolderRow(Base):
    __tablename__ = "vfolders"
    __table_args__ = (
        Index("ix_vfolders_page", "created_at", "id"),  # cursor pagination order
        CheckConstraint("(owner_user_id IS NULL) <> (owner_project_id IS NULL)", name="one_owner"),
        # Names are unique per owner among live folders, so a name frees up once deleting.
        Index(
            "uq_vfolders_user_name",
            "owner_user_id",
            "name",
            unique=True,
            postgresql_where=text("owner_user_id IS NOT NULL AND status = 'ready'"),
        ),
        Index(
            "uq_vfolders_project_name",
            "owner_project_id",
            "name",
            unique=True,
            postgresql_where=text("owner_project_id IS NOT NULL AND status = 'ready'"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    domain_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("domains.id", ondelete="RESTRICT"), nullable=False
    )
    # RESTRICT: deleting an owner must not orphan the files on the proxy.
    owner_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="RESTRICT"), nullable=True
    )
    owner_project_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("projects.id", ondelete="RESTRICT"), nullable=True
    )
    volume: Mapped[str] = mapped_column(String(64), nullable=False)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[VFolderStatus] = mapped_column(
        _enum(VFolderStatus, "vfolder_status"), nullable=False, default=VFolderStatus.READY
    )
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = created_at_col()

    @property
    def folder_id(self) -> str:
        """The folder's id on the storage proxy."""
        return self.id.hex


class VFolderShareRow(Base):
    __tablename__ = "vfolder_shares"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (project_id IS NULL)", name="one_target"),
        Index(
            "uq_vfolder_shares_user",
            "vfolder_id",
            "user_id",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "uq_vfolder_shares_project",
            "vfolder_id",
            "project_id",
            unique=True,
            postgresql_where=text("project_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    vfolder_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("vfolders.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    )
    mode: Mapped[ShareMode] = mapped_column(_enum(ShareMode, "vfolder_share_mode"), nullable=False)
    created_at: Mapped[datetime] = created_at_col()
