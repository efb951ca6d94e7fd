"""vfolders: virtual folders and their shares

Revision ID: 0003
Revises: 0100
Create Date: 2026-11-28 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0100"
branch_labels = None
depends_on = None

STATUS = postgresql.ENUM("ready", "deleting", name="vfolder_status", create_type=False)
MODE = postgresql.ENUM("ro", "rw", name="vfolder_share_mode", create_type=False)


def upgrade() -> None:
    STATUS.create(op.get_bind(), checkfirst=False)
    MODE.create(op.get_bind(), checkfirst=False)
    op.create_table(
        "vfolders",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("domain_id", sa.UUID(), nullable=False),
        sa.Column("owner_user_id", sa.UUID(), nullable=True),
        sa.Column("owner_project_id", sa.UUID(), nullable=True),
        sa.Column("volume", sa.String(length=64), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_by", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(owner_user_id IS NULL) <> (owner_project_id IS NULL)",
            name=op.f("ck_vfolders_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_vfolders_domain_id_domains"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_user_id"],
            ["users.id"],
            name=op.f("fk_vfolders_owner_user_id_users"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["owner_project_id"],
            ["projects.id"],
            name=op.f("fk_vfolders_owner_project_id_projects"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_vfolders_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfolders")),
    )
    op.create_index(op.f("ix_vfolders_created_at"), "vfolders", ["created_at"], unique=False)
    op.create_index(
        "uq_vfolders_user_name",
        "vfolders",
        ["owner_user_id", "name"],
        unique=True,
        postgresql_where=sa.text("owner_user_id IS NOT NULL AND status = 'ready'"),
    )
    op.create_index(
        "uq_vfolders_project_name",
        "vfolders",
        ["owner_project_id", "name"],
        unique=True,
        postgresql_where=sa.text("owner_project_id IS NOT NULL AND status = 'ready'"),
    )
    op.create_table(
        "vfolder_shares",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("vfolder_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("project_id", sa.UUID(), nullable=True),
        sa.Column("mode", MODE, nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (project_id IS NULL)",
            name=op.f("ck_vfolder_shares_one_target"),
        ),
        sa.ForeignKeyConstraint(
            ["vfolder_id"],
            ["vfolders.id"],
            name=op.f("fk_vfolder_shares_vfolder_id_vfolders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_vfolder_shares_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_vfolder_shares_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vfolder_shares")),
    )
    op.create_index(
        op.f("ix_vfolder_shares_created_at"), "vfolder_shares", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_vfolder_shares_user_id"), "vfolder_shares", ["user_id"], unique=False)
    op.create_index(
        op.f("ix_vfolder_shares_project_id"), "vfolder_shares", ["project_id"], unique=False
    )
    op.create_index(
        "uq_vfolder_shares_user",
        "vfolder_shares",
        ["vfolder_id", "user_id"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "uq_vfolder_shares_project",
        "vfolder_shares",
        ["vfolder_id", "project_id"],
        unique=True,
        postgresql_where=sa.text("project_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("vfolder_shares")
    op.drop_table("vfolders")
    MODE.drop(op.get_bind(), checkfirst=False)
    STATUS.drop(op.get_bind(), checkfirst=False)
