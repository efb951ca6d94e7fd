"""Credentials: API tokens, web login sessions, and seen HMAC signatures (replay protection)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, LargeBinary, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from manager.db.models.base import Base, created_at_col, uuid_pk


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    # Cursor pagination walks (created_at, id); rows created in one transaction share
    # created_at, so the index must cover both to avoid sorting the whole table.
    __table_args__ = (Index("ix_api_tokens_page", "created_at", "id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    access_key: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    # sha256 of the secret: enough for bearer checks, useless to whoever reads the table.
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    # The HMAC signing key derived from the secret, sealed with the manager's secret_key
    # (Fernet), because verifying a signature needs the key itself.
    signing_key_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = created_at_col()


class WebSessionRow(Base):
    __tablename__ = "web_sessions"

    # sha256 of the cookie value; the cookie itself is never stored.
    id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = created_at_col()


class SeenSignatureRow(Base):
    __tablename__ = "seen_signatures"

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
