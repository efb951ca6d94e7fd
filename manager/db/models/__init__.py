"""Every ORM row class, imported here so `Base.metadata` is complete for alembic."""

from manager.db.models.auth import ApiTokenRow, SeenSignatureRow, WebSessionRow
from manager.db.models.base import Base
from manager.db.models.resource_groups import ResourceGroupProjectRow, ResourceGroupRow
from manager.db.models.tenancy import (
    DomainRow,
    MembershipRow,
    ProjectRole,
    ProjectRow,
    UserRole,
    UserRow,
)

__all__ = [
    "ApiTokenRow",
    "Base",
    "DomainRow",
    "MembershipRow",
    "ProjectRole",
    "ProjectRow",
    "ResourceGroupProjectRow",
    "ResourceGroupRow",
    "SeenSignatureRow",
    "UserRole",
    "UserRow",
    "WebSessionRow",
]
