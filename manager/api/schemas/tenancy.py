"""Request and response models for domains, projects, users, memberships, tokens and login."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from manager.api.schemas.common import ListQuery, ResponseModel, StrictModel
from manager.db.models import ProjectRole, UserRole

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Description = Annotated[str, StringConstraints(max_length=2000)]
Email = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$")
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]


class DomainCreate(StrictModel):
    name: Name
    description: Description = ""


class DomainUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    is_active: bool | None = None


class DomainOut(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    is_active: bool
    created_at: datetime


class NameFilter(ListQuery):
    name: str | None = Field(None, max_length=64, description="Name prefix.")


class ProjectCreate(StrictModel):
    name: Name
    domain_id: uuid.UUID | None = Field(None, description="Defaults to the caller's domain.")
    description: Description = ""


class ProjectUpdate(StrictModel):
    name: Name | None = None
    description: Description | None = None
    is_active: bool | None = None


class ProjectOut(ResponseModel):
    id: uuid.UUID
    domain_id: uuid.UUID
    name: str
    description: str
    is_active: bool
    created_at: datetime


class ProjectFilter(NameFilter):
    domain_id: uuid.UUID | None = None


class UserCreate(StrictModel):
    username: Name
    email: Email | None = None
    full_name: Annotated[str, StringConstraints(max_length=200)] = ""
    password: Password | None = Field(None, description="Omit for token-only accounts.")
    role: UserRole = UserRole.USER
    domain_id: uuid.UUID | None = Field(None, description="Defaults to the caller's domain.")


class UserUpdate(StrictModel):
    email: Email | None = None
    full_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    password: Password | None = None
    role: UserRole | None = None
    is_active: bool | None = None


class UserOut(ResponseModel):
    id: uuid.UUID
    domain_id: uuid.UUID
    username: str
    email: str | None
    full_name: str
    role: UserRole
    is_active: bool
    created_at: datetime


class UserFilter(ListQuery):
    domain_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    username: str | None = Field(None, max_length=64, description="Username prefix.")
    is_active: bool | None = None


class MemberSet(StrictModel):
    role: ProjectRole = ProjectRole.MEMBER


class MemberOut(ResponseModel):
    project_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    role: ProjectRole
    created_at: datetime


class MemberList(ResponseModel):
    items: list[MemberOut]


class TokenCreate(StrictModel):
    name: Annotated[str, StringConstraints(max_length=100)] = ""
    user_id: uuid.UUID | None = Field(None, description="Admins may issue tokens for others.")
    expires_at: datetime | None = Field(None, description="Timezone-aware expiry; none = never.")


class TokenOut(ResponseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    access_key: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime


class TokenIssued(TokenOut):
    token: str = Field(description="The secret token. Shown once; store it now.")


class TokenFilter(ListQuery):
    user_id: uuid.UUID | None = None


class LoginRequest(StrictModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class WhoAmI(ResponseModel):
    user: UserOut
    project_roles: dict[uuid.UUID, ProjectRole]
    csrf_token: str | None = Field(None, description="Send as X-CSRF-Token with cookie auth.")
