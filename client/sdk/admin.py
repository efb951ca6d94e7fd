"""Nodes, tenancy (users, projects, domains, tokens), resource groups, quotas and usage.

The tenancy and node models carry enums defined next to the manager's ORM models, so importing
them loads SQLAlchemy; they are imported inside the methods that need them to keep `berth run`
and `berth ps` quick to start."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from manager.api.schemas.quotas import QuotaList, QuotaOut, QuotaSet, UsageReport

if TYPE_CHECKING:
    from client.sdk.client import AsyncBerth
    from manager.api.schemas.agents import AgentOut
    from manager.api.schemas.resource_groups import ResourceGroupOut
    from manager.api.schemas.tenancy import (
        DomainOut,
        MemberOut,
        ProjectOut,
        TokenIssued,
        TokenOut,
        UserOut,
    )

V1 = "/api/v1"
QUOTA_KINDS = ("domain", "project", "user", "user_in_project")


def _q(value: object) -> str:
    return quote(str(value), safe="")


def _body(model: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate request fields against the manager's request model; only the fields given."""
    return dict(model.model_validate(dict(fields)).model_dump(mode="json", exclude_unset=True))


class _Resource:
    def __init__(self, api: AsyncBerth) -> None:
        self._api = api


class Nodes(_Resource):
    def list(
        self, *, resource_group: str | None = None, status: str | None = None
    ) -> AsyncIterator[AgentOut]:
        from manager.api.schemas.agents import AgentOut

        params = {"resource_group": resource_group, "status": status}
        return self._api.paginate(f"{V1}/agents", AgentOut, params)

    async def get(self, node_id: str) -> AgentOut:
        return await self._action("GET", node_id)

    async def cordon(self, node_id: str) -> AgentOut:
        """Stop placing new sessions on the node; running ones stay."""
        return await self._action("POST", node_id, "cordon")

    async def uncordon(self, node_id: str) -> AgentOut:
        return await self._action("POST", node_id, "uncordon")

    async def drain(self, node_id: str) -> AgentOut:
        """Cordon the node and let its sessions finish."""
        return await self._action("POST", node_id, "drain")

    async def _action(self, method: str, node_id: str, verb: str | None = None) -> AgentOut:
        from manager.api.schemas.agents import AgentOut

        path = f"{V1}/agents/{_q(node_id)}" + (f"/{verb}" if verb else "")
        return AgentOut.model_validate(await self._api.request(method, path))


class Users(_Resource):
    def list(
        self,
        *,
        username: str | None = None,
        project_id: str | None = None,
        domain_id: str | None = None,
        is_active: bool | None = None,
    ) -> AsyncIterator[UserOut]:
        from manager.api.schemas.tenancy import UserOut

        params = {
            "username": username,
            "project_id": project_id,
            "domain_id": domain_id,
            "is_active": is_active,
        }
        return self._api.paginate(f"{V1}/users", UserOut, params)

    async def get(self, user_id: str) -> UserOut:
        from manager.api.schemas.tenancy import UserOut

        return UserOut.model_validate(await self._api.get(f"{V1}/users/{_q(user_id)}"))

    async def create(self, **fields: Any) -> UserOut:
        from manager.api.schemas.tenancy import UserCreate, UserOut

        body = _body(UserCreate, fields)
        return UserOut.model_validate(await self._api.post(f"{V1}/users", body))

    async def update(self, user_id: str, **fields: Any) -> UserOut:
        from manager.api.schemas.tenancy import UserOut, UserUpdate

        body = _body(UserUpdate, fields)
        answer = await self._api.request("PATCH", f"{V1}/users/{_q(user_id)}", body)
        return UserOut.model_validate(answer)


class Projects(_Resource):
    def list(
        self, *, name: str | None = None, domain_id: str | None = None
    ) -> AsyncIterator[ProjectOut]:
        from manager.api.schemas.tenancy import ProjectOut

        params = {"name": name, "domain_id": domain_id}
        return self._api.paginate(f"{V1}/projects", ProjectOut, params)

    async def get(self, project_id: str) -> ProjectOut:
        from manager.api.schemas.tenancy import ProjectOut

        return ProjectOut.model_validate(await self._api.get(f"{V1}/projects/{_q(project_id)}"))

    async def create(self, **fields: Any) -> ProjectOut:
        from manager.api.schemas.tenancy import ProjectCreate, ProjectOut

        body = _body(ProjectCreate, fields)
        return ProjectOut.model_validate(await self._api.post(f"{V1}/projects", body))

    async def delete(self, project_id: str) -> None:
        await self._api.delete(f"{V1}/projects/{_q(project_id)}")

    async def members(self, project_id: str) -> builtins.list[MemberOut]:
        from manager.api.schemas.tenancy import MemberList

        answer = await self._api.get(f"{V1}/projects/{_q(project_id)}/members")
        return MemberList.model_validate(answer).items

    async def set_member(self, project_id: str, user_id: str, *, role: str) -> MemberOut:
        from manager.api.schemas.tenancy import MemberOut, MemberSet

        path = f"{V1}/projects/{_q(project_id)}/members/{_q(user_id)}"
        answer = await self._api.request("PUT", path, _body(MemberSet, {"role": role}))
        return MemberOut.model_validate(answer)

    async def remove_member(self, project_id: str, user_id: str) -> None:
        await self._api.delete(f"{V1}/projects/{_q(project_id)}/members/{_q(user_id)}")


class Domains(_Resource):
    def list(self, *, name: str | None = None) -> AsyncIterator[DomainOut]:
        from manager.api.schemas.tenancy import DomainOut

        return self._api.paginate(f"{V1}/domains", DomainOut, {"name": name})

    async def create(self, **fields: Any) -> DomainOut:
        from manager.api.schemas.tenancy import DomainCreate, DomainOut

        body = _body(DomainCreate, fields)
        return DomainOut.model_validate(await self._api.post(f"{V1}/domains", body))


class Tokens(_Resource):
    def list(self, *, user_id: str | None = None) -> AsyncIterator[TokenOut]:
        from manager.api.schemas.tenancy import TokenOut

        return self._api.paginate(f"{V1}/tokens", TokenOut, {"user_id": user_id})

    async def create(self, **fields: Any) -> TokenIssued:
        """A new API token; its secret is in `.token` and is never shown again."""
        from manager.api.schemas.tenancy import TokenCreate, TokenIssued

        body = _body(TokenCreate, fields)
        return TokenIssued.model_validate(await self._api.post(f"{V1}/tokens", body))

    async def revoke(self, token_id: str) -> TokenOut:
        from manager.api.schemas.tenancy import TokenOut

        answer = await self._api.post(f"{V1}/tokens/{_q(token_id)}/revoke", None)
        return TokenOut.model_validate(answer)


class ResourceGroups(_Resource):
    def list(self, *, name: str | None = None) -> AsyncIterator[ResourceGroupOut]:
        from manager.api.schemas.resource_groups import ResourceGroupOut

        return self._api.paginate(f"{V1}/resource-groups", ResourceGroupOut, {"name": name})

    async def get(self, group_id: str) -> ResourceGroupOut:
        from manager.api.schemas.resource_groups import ResourceGroupOut

        answer = await self._api.get(f"{V1}/resource-groups/{_q(group_id)}")
        return ResourceGroupOut.model_validate(answer)

    async def create(self, **fields: Any) -> ResourceGroupOut:
        from manager.api.schemas.resource_groups import ResourceGroupCreate, ResourceGroupOut

        body = _body(ResourceGroupCreate, fields)
        return ResourceGroupOut.model_validate(await self._api.post(f"{V1}/resource-groups", body))

    async def update(self, group_id: str, **fields: Any) -> ResourceGroupOut:
        from manager.api.schemas.resource_groups import ResourceGroupOut, ResourceGroupUpdate

        body = _body(ResourceGroupUpdate, fields)
        path = f"{V1}/resource-groups/{_q(group_id)}"
        return ResourceGroupOut.model_validate(await self._api.request("PATCH", path, body))

    async def delete(self, group_id: str) -> None:
        await self._api.delete(f"{V1}/resource-groups/{_q(group_id)}")


class Quotas(_Resource):
    """Limits per domain, project, user, or user within a project (kind `user_in_project`,
    which needs `project_id`)."""

    async def list(self) -> list[QuotaOut]:
        return QuotaList.model_validate(await self._api.get(f"{V1}/quotas")).items

    async def get(self, kind: str, target_id: str, *, project_id: str | None = None) -> QuotaOut:
        answer = await self._api.get(self._path(kind, target_id), params=_scope(project_id))
        return QuotaOut.model_validate(answer)

    async def set(
        self,
        kind: str,
        target_id: str,
        limits: QuotaSet | Mapping[str, Any],
        *,
        project_id: str | None = None,
    ) -> QuotaOut:
        """Replace the quota of one target (fields left out are unlimited)."""
        model = limits if isinstance(limits, QuotaSet) else QuotaSet.model_validate(limits)
        answer = await self._api.request(
            "PUT",
            self._path(kind, target_id),
            model.model_dump(mode="json", exclude_unset=True),
            params=_scope(project_id),
        )
        return QuotaOut.model_validate(answer)

    async def delete(self, kind: str, target_id: str, *, project_id: str | None = None) -> None:
        await self._api.delete(self._path(kind, target_id), params=_scope(project_id))

    async def mine(self) -> builtins.list[QuotaOut]:
        """The caller's occupancy against every limit that applies to them."""
        return QuotaList.model_validate(await self._api.get(f"{V1}/usage/quota")).items

    @staticmethod
    def _path(kind: str, target_id: str) -> str:
        return f"{V1}/quotas/{_q(kind)}/{_q(target_id)}"


class Usage(_Resource):
    async def report(
        self, *, start: datetime, end: datetime | None = None, group_by: str = "project"
    ) -> UsageReport:
        """GPU-hours per accelerator kind, CPU-hours and sessions per project or user."""
        params = {"start": start, "end": end, "group_by": group_by}
        return UsageReport.model_validate(await self._api.get(f"{V1}/usage", params=params))


def _scope(project_id: str | None) -> dict[str, Any]:
    return {"project_id": project_id} if project_id else {}
