"""`berth admin users|projects|tokens|domains ...`: tenancy administration. Cluster
administration (nodes, groups, quotas, usage) lives in admin_cluster.py."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import typer

from client.cli.common import (
    Output,
    OutputOpt,
    call,
    emit,
    err,
    kv_table,
    make_table,
)
from client.sdk.client import AsyncBerth
from client.sdk.errors import BerthAPIError

admin_app = typer.Typer(
    help="Administer users, projects, tokens, quotas, resource groups, nodes and usage.",
    no_args_is_help=True,
)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects and their members.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
domains_app = typer.Typer(help="Domains.", no_args_is_help=True)
admin_app.add_typer(users_app, name="users")
admin_app.add_typer(projects_app, name="projects")
admin_app.add_typer(tokens_app, name="tokens")
admin_app.add_typer(domains_app, name="domains")


def _is_uuid(ref: str) -> bool:
    with contextlib.suppress(ValueError):
        uuid.UUID(ref)
        return True
    return False


async def user_id(api: AsyncBerth, ref: str) -> str:
    """A user id from an id or a username."""
    if _is_uuid(ref):
        return ref
    async for user in api.users.list(username=ref):
        if user.username == ref:
            return str(user.id)
    raise BerthAPIError("not_found", f"no user named {ref!r}", 404)


async def project_id(api: AsyncBerth, ref: str) -> str:
    if _is_uuid(ref):
        return ref
    async for project in api.projects.list(name=ref):
        if project.name == ref:
            return str(project.id)
    raise BerthAPIError("not_found", f"no project named {ref!r}", 404)


async def domain_id(api: AsyncBerth, ref: str) -> str:
    if _is_uuid(ref):
        return ref
    async for domain in api.domains.list(name=ref):
        if domain.name == ref:
            return str(domain.id)
    raise BerthAPIError("not_found", f"no domain named {ref!r}", 404)


async def _collect(source: Any) -> list[Any]:
    return [item async for item in source]


# Users ----------------------------------------------------------------------------------


@users_app.command("ls")
def users_ls(
    project: str | None = typer.Option(None, "--project", "-p", help="Members of a project."),
    output: Output = OutputOpt,
) -> None:
    """List users."""

    async def fetch(api: AsyncBerth) -> list[Any]:
        pid = await project_id(api, project) if project else None
        return await _collect(api.users.list(project_id=pid))

    users = call(fetch)

    def table() -> Any:
        t = make_table("ID", "USERNAME", "ROLE", "ACTIVE", "EMAIL")
        for u in users:
            t.add_row(str(u.id)[:8], u.username, u.role.value, str(u.is_active), u.email or "-")
        return t

    emit(users, output, table)


@users_app.command("create")
def users_create(
    username: str = typer.Argument(..., show_default=False),
    role: str = typer.Option("user", "--role", help="user, admin (domain) or superadmin."),
    email: str | None = typer.Option(None, "--email"),
    full_name: str = typer.Option("", "--full-name"),
    project: str | None = typer.Option(None, "--project", "-p", help="Also add to a project."),
    output: Output = OutputOpt,
) -> None:
    """Create a (token-only) user; optionally make them a member of a project.

    Example: berth admin users create alice --project vision
    """

    async def create(api: AsyncBerth) -> Any:
        fields: dict[str, Any] = {"username": username, "role": role, "full_name": full_name}
        if email:
            fields["email"] = email
        user = await api.users.create(**fields)
        if project:
            await api.projects.set_member(
                await project_id(api, project), str(user.id), role="member"
            )
        return user

    user = call(create)
    emit(user, output, lambda: kv_table(user.model_dump().items()))


@users_app.command("get")
def users_get(
    ref: str = typer.Argument(..., help="User id or username."), output: Output = OutputOpt
) -> None:
    """Show a user."""

    async def fetch(api: AsyncBerth) -> Any:
        return await api.users.get(await user_id(api, ref))

    user = call(fetch)
    emit(user, output, lambda: kv_table(user.model_dump().items()))


@users_app.command("update")
def users_update(
    ref: str = typer.Argument(..., help="User id or username."),
    role: str | None = typer.Option(None, "--role"),
    active: bool | None = typer.Option(None, "--active/--inactive", help="Enable or disable."),
    email: str | None = typer.Option(None, "--email"),
    output: Output = OutputOpt,
) -> None:
    """Change a user's role, email, or disable them."""
    fields: dict[str, Any] = {}
    if role is not None:
        fields["role"] = role
    if active is not None:
        fields["is_active"] = active
    if email is not None:
        fields["email"] = email

    async def update(api: AsyncBerth) -> Any:
        return await api.users.update(await user_id(api, ref), **fields)

    user = call(update)
    emit(user, output, lambda: kv_table(user.model_dump().items()))


# Projects -------------------------------------------------------------------------------


@projects_app.command("ls")
def projects_ls(output: Output = OutputOpt) -> None:
    """List projects."""
    projects = call(lambda api: _collect(api.projects.list()))

    def table() -> Any:
        t = make_table("ID", "NAME", "ACTIVE", "DESCRIPTION")
        for p in projects:
            t.add_row(str(p.id)[:8], p.name, str(p.is_active), p.description or "-")
        return t

    emit(projects, output, table)


@projects_app.command("create")
def projects_create(
    name: str = typer.Argument(..., show_default=False),
    description: str = typer.Option("", "--description"),
    domain: str | None = typer.Option(None, "--domain", help="Domain id or name."),
    output: Output = OutputOpt,
) -> None:
    """Create a project (in your domain unless --domain)."""

    async def create(api: AsyncBerth) -> Any:
        fields: dict[str, Any] = {"name": name, "description": description}
        if domain:
            fields["domain_id"] = await domain_id(api, domain)
        return await api.projects.create(**fields)

    project = call(create)
    emit(project, output, lambda: kv_table(project.model_dump().items()))


@projects_app.command("rm")
def projects_rm(ref: str = typer.Argument(..., help="Project id or name.")) -> None:
    """Delete a project."""

    async def delete(api: AsyncBerth) -> None:
        await api.projects.delete(await project_id(api, ref))

    call(delete)
    err.print(f"deleted project {ref}")


@projects_app.command("members")
def projects_members(
    ref: str = typer.Argument(..., help="Project id or name."), output: Output = OutputOpt
) -> None:
    """List a project's members and their roles."""

    async def fetch(api: AsyncBerth) -> list[Any]:
        return await api.projects.members(await project_id(api, ref))

    members = call(fetch)

    def table() -> Any:
        t = make_table("USER", "ROLE", "SINCE")
        for m in members:
            t.add_row(m.username, m.role.value, m.created_at.strftime("%Y-%m-%d"))
        return t

    emit(members, output, table)


@projects_app.command("add-member")
def projects_add_member(
    ref: str = typer.Argument(..., help="Project id or name."),
    user: str = typer.Argument(..., help="User id or username."),
    role: str = typer.Option("member", "--role", help="member or admin."),
    output: Output = OutputOpt,
) -> None:
    """Add a user to a project, or change their role there."""

    async def add(api: AsyncBerth) -> Any:
        pid, uid = await project_id(api, ref), await user_id(api, user)
        return await api.projects.set_member(pid, uid, role=role)

    member = call(add)
    emit(member, output, lambda: kv_table(member.model_dump().items()))


@projects_app.command("rm-member")
def projects_rm_member(
    ref: str = typer.Argument(..., help="Project id or name."),
    user: str = typer.Argument(..., help="User id or username."),
) -> None:
    """Remove a user from a project."""

    async def remove(api: AsyncBerth) -> None:
        await api.projects.remove_member(await project_id(api, ref), await user_id(api, user))

    call(remove)
    err.print(f"removed {user} from {ref}")


# Tokens ---------------------------------------------------------------------------------


@tokens_app.command("ls")
def tokens_ls(
    user: str | None = typer.Option(None, "--user", "-u", help="Another user's tokens."),
    output: Output = OutputOpt,
) -> None:
    """List API tokens (yours unless --user)."""

    async def fetch(api: AsyncBerth) -> list[Any]:
        uid = await user_id(api, user) if user else None
        return await _collect(api.tokens.list(user_id=uid))

    tokens = call(fetch)

    def table() -> Any:
        t = make_table("ID", "NAME", "ACCESS KEY", "EXPIRES", "STATE")
        for tok in tokens:
            state = "revoked" if tok.revoked_at else "active"
            expires = tok.expires_at.strftime("%Y-%m-%d") if tok.expires_at else "never"
            t.add_row(str(tok.id)[:8], tok.name or "-", tok.access_key, expires, state)
        return t

    emit(tokens, output, table)


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Option("", "--name", help="A label to recognise the token by."),
    user: str | None = typer.Option(None, "--user", "-u", help="Issue for another user."),
    output: Output = OutputOpt,
) -> None:
    """Create an API token. The secret is printed once (alone on stdout with -o table).

    Example: berth admin tokens create --user alice --name ci
    """

    async def create(api: AsyncBerth) -> Any:
        fields: dict[str, Any] = {"name": name}
        if user:
            fields["user_id"] = await user_id(api, user)
        return await api.tokens.create(**fields)

    issued = call(create)
    if output is Output.TABLE:
        err.print(f"token {issued.id} for user {issued.user_id}; store it now, it is shown once:")
        typer.echo(issued.token)
        return
    emit(issued, output, lambda: "")


@tokens_app.command("revoke")
def tokens_revoke(token: str = typer.Argument(..., help="Token id.")) -> None:
    """Revoke an API token at once."""
    call(lambda api: api.tokens.revoke(token))
    err.print(f"revoked token {token}")


# Domains --------------------------------------------------------------------------------


@domains_app.command("ls")
def domains_ls(output: Output = OutputOpt) -> None:
    """List domains."""
    domains = call(lambda api: _collect(api.domains.list()))

    def table() -> Any:
        t = make_table("ID", "NAME", "ACTIVE", "DESCRIPTION")
        for d in domains:
            t.add_row(str(d.id)[:8], d.name, str(d.is_active), d.description or "-")
        return t

    emit(domains, output, table)


@domains_app.command("create")
def domains_create(
    name: str = typer.Argument(..., show_default=False),
    description: str = typer.Option("", "--description"),
    output: Output = OutputOpt,
) -> None:
    """Create a domain (superadmins)."""
    domain = call(lambda api: api.domains.create(name=name, description=description))
    emit(domain, output, lambda: kv_table(domain.model_dump().items()))
