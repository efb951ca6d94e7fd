"""The one table of every route: method, path, handler, the permission it needs, and its models.
Later resources (agents, sessions, vfolders, images, apps) append their tables here."""

from __future__ import annotations

from manager.api import auth, resource_groups, system, tenancy
from manager.api.framework import Route
from manager.api.permissions import Permission as P
from manager.api.schemas import resource_groups as rg
from manager.api.schemas import tenancy as t
from manager.api.schemas.common import PageResponse

V1 = "/api/v1"

SYSTEM_ROUTES = [
    Route("GET", "/healthz", system.healthz, P.PUBLIC, "Liveness", response=dict, tags=("system",)),
    Route("GET", "/readyz", system.readyz, P.PUBLIC, "Readiness (database reachable)",
          response=dict, tags=("system",), transactional=False),
    Route("GET", "/metrics", system.metrics, P.PUBLIC, "Prometheus metrics", response="text",
          tags=("system",), transactional=False),
    Route("GET", f"{V1}/openapi.json", system.openapi, P.PUBLIC, "This OpenAPI document",
          response=dict, tags=("system",), transactional=False),
    Route("GET", f"{V1}/docs", system.docs, P.PUBLIC, "API docs page", response="text",
          tags=("system",), transactional=False),
]

AUTH_ROUTES = [
    Route("POST", f"{V1}/auth/login", auth.login, P.PUBLIC, "Log in with a password",
          body=t.LoginRequest, response=t.WhoAmI, tags=("auth",)),
    Route("POST", f"{V1}/auth/logout", auth.logout, P.SELF, "Log out", tags=("auth",)),
    Route("GET", f"{V1}/auth/me", auth.whoami, P.SELF, "Show the caller", response=t.WhoAmI,
          tags=("auth",)),
    Route("POST", f"{V1}/tokens", auth.create_token, P.SELF, "Create an API token",
          body=t.TokenCreate, response=t.TokenIssued, status=201, tags=("tokens",)),
    Route("GET", f"{V1}/tokens", auth.list_tokens, P.SELF, "List API tokens",
          query=t.TokenFilter, response=PageResponse[t.TokenOut], tags=("tokens",)),
    Route("POST", f"{V1}/tokens/{{token_id}}/revoke", auth.revoke_token, P.SELF,
          "Revoke an API token", response=t.TokenOut, tags=("tokens",)),
]

TENANCY_ROUTES = [
    Route("POST", f"{V1}/domains", tenancy.create_domain, P.DOMAIN_WRITE, "Create a domain",
          body=t.DomainCreate, response=t.DomainOut, status=201, tags=("domains",)),
    Route("GET", f"{V1}/domains", tenancy.list_domains, P.DOMAIN_READ, "List domains",
          query=t.NameFilter, response=PageResponse[t.DomainOut], tags=("domains",)),
    Route("GET", f"{V1}/domains/{{domain_id}}", tenancy.get_domain, P.DOMAIN_READ,
          "Get a domain", response=t.DomainOut, tags=("domains",)),
    Route("PATCH", f"{V1}/domains/{{domain_id}}", tenancy.update_domain, P.DOMAIN_WRITE,
          "Update a domain", body=t.DomainUpdate, response=t.DomainOut, tags=("domains",)),
    Route("POST", f"{V1}/projects", tenancy.create_project, P.PROJECT_CREATE,
          "Create a project", body=t.ProjectCreate, response=t.ProjectOut, status=201,
          tags=("projects",)),
    Route("GET", f"{V1}/projects", tenancy.list_projects, P.PROJECT_READ, "List projects",
          query=t.ProjectFilter, response=PageResponse[t.ProjectOut], tags=("projects",)),
    Route("GET", f"{V1}/projects/{{project_id}}", tenancy.get_project, P.PROJECT_READ,
          "Get a project", response=t.ProjectOut, tags=("projects",)),
    Route("PATCH", f"{V1}/projects/{{project_id}}", tenancy.update_project, P.PROJECT_WRITE,
          "Update a project", body=t.ProjectUpdate, response=t.ProjectOut, tags=("projects",)),
    Route("DELETE", f"{V1}/projects/{{project_id}}", tenancy.delete_project, P.PROJECT_DELETE,
          "Delete a project", tags=("projects",)),
    Route("GET", f"{V1}/projects/{{project_id}}/members", tenancy.list_members, P.PROJECT_READ,
          "List project members", response=t.MemberList, tags=("projects",)),
    Route("PUT", f"{V1}/projects/{{project_id}}/members/{{user_id}}", tenancy.set_member,
          P.PROJECT_WRITE, "Add or update a project member", body=t.MemberSet,
          response=t.MemberOut, tags=("projects",)),
    Route("DELETE", f"{V1}/projects/{{project_id}}/members/{{user_id}}", tenancy.remove_member,
          P.PROJECT_WRITE, "Remove a project member", tags=("projects",)),
    Route("POST", f"{V1}/users", tenancy.create_user, P.USER_CREATE, "Create a user",
          body=t.UserCreate, response=t.UserOut, status=201, tags=("users",)),
    Route("GET", f"{V1}/users", tenancy.list_users, P.USER_READ, "List users",
          query=t.UserFilter, response=PageResponse[t.UserOut], tags=("users",)),
    Route("GET", f"{V1}/users/{{user_id}}", tenancy.get_user, P.USER_READ, "Get a user",
          response=t.UserOut, tags=("users",)),
    Route("PATCH", f"{V1}/users/{{user_id}}", tenancy.update_user, P.USER_WRITE,
          "Update a user", body=t.UserUpdate, response=t.UserOut, tags=("users",)),
]

RESOURCE_GROUP_ROUTES = [
    Route("POST", f"{V1}/resource-groups", resource_groups.create_group, P.RESOURCE_GROUP_WRITE,
          "Create a resource group", body=rg.ResourceGroupCreate, response=rg.ResourceGroupOut,
          status=201, tags=("resource-groups",)),
    Route("GET", f"{V1}/resource-groups", resource_groups.list_groups, P.RESOURCE_GROUP_READ,
          "List resource groups", query=t.NameFilter,
          response=PageResponse[rg.ResourceGroupOut], tags=("resource-groups",)),
    Route("GET", f"{V1}/resource-groups/{{group_id}}", resource_groups.get_group,
          P.RESOURCE_GROUP_READ, "Get a resource group", response=rg.ResourceGroupOut,
          tags=("resource-groups",)),
    Route("PATCH", f"{V1}/resource-groups/{{group_id}}", resource_groups.update_group,
          P.RESOURCE_GROUP_WRITE, "Update a resource group", body=rg.ResourceGroupUpdate,
          response=rg.ResourceGroupOut, tags=("resource-groups",)),
    Route("DELETE", f"{V1}/resource-groups/{{group_id}}", resource_groups.delete_group,
          P.RESOURCE_GROUP_WRITE, "Delete a resource group", tags=("resource-groups",)),
]


def all_routes() -> list[Route]:
    return [*SYSTEM_ROUTES, *AUTH_ROUTES, *TENANCY_ROUTES, *RESOURCE_GROUP_ROUTES]
