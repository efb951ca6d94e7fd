"""Who is calling, resolved once per request by the auth middleware and passed to services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from manager.db.models import ProjectRole, UserRole


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    domain_id: uuid.UUID
    role: UserRole
    project_roles: dict[uuid.UUID, ProjectRole] = field(default_factory=dict)
    username: str = ""

    @property
    def is_superadmin(self) -> bool:
        return self.role is UserRole.SUPERADMIN

    def is_domain_admin_of(self, domain_id: uuid.UUID) -> bool:
        return self.is_superadmin or (
            self.role is UserRole.DOMAIN_ADMIN and self.domain_id == domain_id
        )

    def is_project_admin_of(self, *, project_id: uuid.UUID, domain_id: uuid.UUID) -> bool:
        return (
            self.is_domain_admin_of(domain_id)
            or self.project_roles.get(project_id) is ProjectRole.ADMIN
        )

    def is_member_of(self, project_id: uuid.UUID) -> bool:
        return project_id in self.project_roles
