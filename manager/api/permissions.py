"""Route-level permissions and which global role holds each. Finer checks (is this the caller's
project? are they its admin?) happen in the services, which also scope every read."""

from __future__ import annotations

import enum

from manager.db.models import UserRole


class Permission(enum.StrEnum):
    PUBLIC = "public"  # no credentials: health, OpenAPI, login
    CLUSTER = "cluster"  # agents and storage proxies, with the cluster secret
    SELF = "self"  # any authenticated user, on their own things (me, tokens, logout)
    DOMAIN_READ = "domain.read"
    DOMAIN_WRITE = "domain.write"
    PROJECT_READ = "project.read"
    PROJECT_CREATE = "project.create"
    PROJECT_WRITE = "project.write"  # project admins too: the service checks which project
    PROJECT_DELETE = "project.delete"
    USER_READ = "user.read"
    USER_CREATE = "user.create"
    USER_WRITE = "user.write"  # users edit themselves; the service limits the fields
    RESOURCE_GROUP_READ = "resource_group.read"
    RESOURCE_GROUP_WRITE = "resource_group.write"
    AGENT_READ = "agent.read"
    AGENT_WRITE = "agent.write"
    SESSION_CREATE = "session.create"
    SESSION_READ = "session.read"  # the service scopes: own sessions, or the projects you admin
    SESSION_WRITE = "session.write"


_USER = {
    Permission.SELF,
    Permission.DOMAIN_READ,
    Permission.PROJECT_READ,
    Permission.PROJECT_WRITE,
    Permission.USER_READ,
    Permission.USER_WRITE,
    Permission.RESOURCE_GROUP_READ,
    Permission.SESSION_CREATE,
    Permission.SESSION_READ,
    Permission.SESSION_WRITE,
}
_DOMAIN_ADMIN = _USER | {
    Permission.PROJECT_CREATE,
    Permission.PROJECT_DELETE,
    Permission.USER_CREATE,
    Permission.AGENT_READ,
}
_SUPERADMIN = set(Permission) - {Permission.CLUSTER}

ROLE_PERMISSIONS: dict[UserRole, frozenset[Permission]] = {
    UserRole.USER: frozenset(_USER),
    UserRole.DOMAIN_ADMIN: frozenset(_DOMAIN_ADMIN),
    UserRole.SUPERADMIN: frozenset(_SUPERADMIN),
}


def role_allows(role: UserRole, permission: Permission) -> bool:
    return permission is Permission.PUBLIC or permission in ROLE_PERMISSIONS[role]
