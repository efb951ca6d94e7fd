"""Every ORM row class, imported here so `Base.metadata` is complete for alembic."""

from manager.db.models.agents import AgentRow, AgentStatus
from manager.db.models.auth import ApiTokenRow, SeenSignatureRow, WebSessionRow
from manager.db.models.base import Base
from manager.db.models.images import ImageRuleProjectRow, ImageRuleRow
from manager.db.models.quotas import QuotaUsageRow, ResourcePolicyRow
from manager.db.models.resource_groups import ResourceGroupProjectRow, ResourceGroupRow
from manager.db.models.sessions import SessionContainerRow, SessionHistoryRow, SessionRow
from manager.db.models.tenancy import (
    DomainRow,
    MembershipRow,
    ProjectRole,
    ProjectRow,
    UserRole,
    UserRow,
)
from manager.db.models.vfolders import ShareMode, VFolderRow, VFolderShareRow, VFolderStatus

__all__ = [
    "AgentRow",
    "AgentStatus",
    "ApiTokenRow",
    "Base",
    "DomainRow",
    "ImageRuleProjectRow",
    "ImageRuleRow",
    "MembershipRow",
    "ProjectRole",
    "ProjectRow",
    "QuotaUsageRow",
    "ResourceGroupProjectRow",
    "ResourceGroupRow",
    "ResourcePolicyRow",
    "SeenSignatureRow",
    "SessionContainerRow",
    "SessionHistoryRow",
    "SessionRow",
    "ShareMode",
    "UserRole",
    "UserRow",
    "VFolderRow",
    "VFolderShareRow",
    "VFolderStatus",
    "WebSessionRow",
]
