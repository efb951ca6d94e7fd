"""images: per-project image rules

Revision ID: 0100
Revises: 0002
Create Date: 2026-11-28 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0100"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_rules",
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("updated_by", sa.UUID(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by"],
            ["users.id"],
            name=op.f("fk_image_rules_updated_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("image", name=op.f("pk_image_rules")),
    )
    op.create_table(
        "image_rule_projects",
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image"],
            ["image_rules.image"],
            name=op.f("fk_image_rule_projects_image_image_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_image_rule_projects_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image", "project_id", name=op.f("pk_image_rule_projects")),
    )
    op.create_index(
        op.f("ix_image_rule_projects_project_id"),
        "image_rule_projects",
        ["project_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_image_rule_projects_project_id"), table_name="image_rule_projects")
    op.drop_table("image_rule_projects")
    op.drop_table("image_rules")
