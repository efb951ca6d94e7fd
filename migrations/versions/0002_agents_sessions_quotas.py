"""agents, sessions, quotas

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:29:45.305267
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("resource_group", sa.String(length=64), nullable=False),
        sa.Column("advertised_url", sa.String(length=512), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("agent_version", sa.String(length=32), nullable=False),
        sa.Column("status", sa.Enum("alive", "lost", name="agent_status"), nullable=False),
        sa.Column("cordoned", sa.Boolean(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("capacity", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("devices", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("images", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("runtime_health", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("plugin_errors", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reported_containers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("allocated", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("last_heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index(op.f("ix_agents_created_at"), "agents", ["created_at"], unique=False)
    op.create_index(op.f("ix_agents_resource_group"), "agents", ["resource_group"], unique=False)
    op.create_table(
        "quota_usage",
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("slots", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_quota_usage")),
    )
    op.create_table(
        "resource_policies",
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("slots", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("max_concurrent_sessions", sa.Integer(), nullable=True),
        sa.Column("max_pending_sessions", sa.Integer(), nullable=True),
        sa.Column("max_session_lifetime_s", sa.Integer(), nullable=True),
        sa.Column("default_idle_timeout_s", sa.Integer(), nullable=True),
        sa.Column(
            "allowed_resource_groups", postgresql.JSONB(astext_type=sa.Text()), nullable=True
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_resource_policies")),
    )
    op.create_index(
        op.f("ix_resource_policies_created_at"), "resource_policies", ["created_at"], unique=False
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("domain_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("resource_group", sa.String(length=64), nullable=False),
        sa.Column(
            "type",
            sa.Enum("interactive", "batch", "inference", name="session_type"),
            nullable=False,
        ),
        sa.Column("image", sa.String(length=512), nullable=False),
        sa.Column("architecture", sa.String(length=32), nullable=False),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("env", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("containers_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("multi_node", sa.Boolean(), nullable=False),
        sa.Column("mounts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ports", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tags", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("idle_timeout_s", sa.Integer(), nullable=True),
        sa.Column("max_duration_s", sa.Integer(), nullable=True),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "scheduled",
                "preparing",
                "running",
                "terminating",
                "terminated",
                "cancelled",
                "error",
                name="session_status",
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=64), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.Enum("success", "failure", name="session_result"), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("pending_verdict", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.UUID(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatch_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"], ["domains.id"], name=op.f("fk_sessions_domain_id_domains")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_sessions_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_created_at"), "sessions", ["created_at"], unique=False)
    op.create_index(
        "ix_sessions_lease_due",
        "sessions",
        ["status", "lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('scheduled','preparing','terminating')"),
    )
    op.create_index(
        "ix_sessions_project_status", "sessions", ["project_id", "status"], unique=False
    )
    op.create_index(op.f("ix_sessions_status"), "sessions", ["status"], unique=False)
    op.create_index(
        "ix_sessions_status_group", "sessions", ["status", "resource_group"], unique=False
    )
    op.create_index(op.f("ix_sessions_user_id"), "sessions", ["user_id"], unique=False)
    op.create_table(
        "session_containers",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("domain_id", sa.UUID(), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("resource_group", sa.String(length=64), nullable=False),
        sa.Column("slots", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("devices", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("oom_killed", sa.Boolean(), nullable=False),
        sa.Column("ports", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("log_tail", sa.Text(), nullable=True),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_containers_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_containers")),
    )
    op.create_index(
        op.f("ix_session_containers_created_at"),
        "session_containers",
        ["created_at"],
        unique=False,
    )
    op.create_index(
        "ix_session_containers_node_active",
        "session_containers",
        ["node_id"],
        unique=False,
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.create_index(
        op.f("ix_session_containers_project_id"),
        "session_containers",
        ["project_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_containers_session_id"),
        "session_containers",
        ["session_id"],
        unique=False,
    )
    op.create_index(
        "ix_session_containers_usage",
        "session_containers",
        ["allocated_at", "released_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_containers_user_id"), "session_containers", ["user_id"], unique=False
    )
    op.create_table(
        "session_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "scheduled",
                "preparing",
                "running",
                "terminating",
                "terminated",
                "cancelled",
                "error",
                name="session_status",
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_history_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_history")),
    )
    op.create_index(
        op.f("ix_session_history_session_id"), "session_history", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_session_history_session_id"), table_name="session_history")
    op.drop_table("session_history")
    op.drop_index(op.f("ix_session_containers_user_id"), table_name="session_containers")
    op.drop_index("ix_session_containers_usage", table_name="session_containers")
    op.drop_index(op.f("ix_session_containers_session_id"), table_name="session_containers")
    op.drop_index(op.f("ix_session_containers_project_id"), table_name="session_containers")
    op.drop_index(
        "ix_session_containers_node_active",
        table_name="session_containers",
        postgresql_where=sa.text("released_at IS NULL"),
    )
    op.drop_index(op.f("ix_session_containers_created_at"), table_name="session_containers")
    op.drop_table("session_containers")
    op.drop_index(op.f("ix_sessions_user_id"), table_name="sessions")
    op.drop_index("ix_sessions_status_group", table_name="sessions")
    op.drop_index(op.f("ix_sessions_status"), table_name="sessions")
    op.drop_index("ix_sessions_project_status", table_name="sessions")
    op.drop_index(
        "ix_sessions_lease_due",
        table_name="sessions",
        postgresql_where=sa.text("status IN ('scheduled','preparing','terminating')"),
    )
    op.drop_index(op.f("ix_sessions_created_at"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_resource_policies_created_at"), table_name="resource_policies")
    op.drop_table("resource_policies")
    op.drop_table("quota_usage")
    op.drop_index(op.f("ix_agents_resource_group"), table_name="agents")
    op.drop_index(op.f("ix_agents_created_at"), table_name="agents")
    op.drop_table("agents")
    # Enum types outlive their tables in PostgreSQL; drop them so base → head works again.
    for name in ("session_result", "session_status", "session_type", "agent_status"):
        sa.Enum(name=name).drop(op.get_bind(), checkfirst=True)
