"""`berth admin nodes|groups|quotas|usage ...`: cluster administration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import typer
from rich.table import Table

from client.cli.admin import _collect, admin_app, domain_id, project_id, user_id
from client.cli.common import (
    Output,
    OutputOpt,
    call,
    duration_or_usage,
    emit,
    err,
    fail,
    fmt_amount,
    fmt_value,
    kv_table,
    make_table,
    parse_amounts,
)
from client.cli.exitcodes import ExitCode
from client.sdk.admin import QUOTA_KINDS
from client.sdk.client import AsyncBerth
from manager.api.schemas.quotas import QuotaOut, UsageReport

nodes_app = typer.Typer(help="Nodes: list, cordon, uncordon, drain.")
groups_app = typer.Typer(help="Resource groups.", no_args_is_help=True)
quotas_app = typer.Typer(help="Quotas per domain, project, user.", no_args_is_help=True)
admin_app.add_typer(nodes_app, name="nodes")
admin_app.add_typer(groups_app, name="groups")
admin_app.add_typer(quotas_app, name="quotas")

GIB = Decimal(1024**3)


# Nodes ----------------------------------------------------------------------------------


@nodes_app.callback(invoke_without_command=True)
def nodes(ctx: typer.Context, output: Output = OutputOpt) -> None:
    """List nodes with their devices and utilisation (same as `nodes ls`)."""
    if ctx.invoked_subcommand is None:
        nodes_ls(output)


@nodes_app.command("ls")
def nodes_ls(output: Output = OutputOpt) -> None:
    """List nodes: state, accelerators in use, CPU and memory allocation, utilisation."""
    found = call(lambda api: _collect(api.nodes.list()))
    emit(found, output, lambda: node_table(found))


def node_table(found: list[Any]) -> Table:
    table = make_table("NODE", "STATE", "GROUP", "ACCEL", "CPU", "MEM GiB", "UTIL")
    for n in found:
        state = n.status.value + (" cordoned" if n.cordoned else "")
        state += " draining" if n.draining else ""
        accel = [
            f"{_short(slot)} {fmt_amount(n.allocated.get(slot, 0))}/{fmt_amount(total)}"
            for slot, total in sorted(n.capacity.items())
            if slot not in ("cpu", "mem") and total
        ]
        mem_cap = n.capacity.get("mem", Decimal(0)) / GIB
        mem_used = n.allocated.get("mem", Decimal(0)) / GIB
        util = [
            f"{_short(slot)} {int(v * 100)}%"
            for slot, v in sorted(n.utilisation.items())
            if slot not in ("mem",)
        ]
        table.add_row(
            n.id,
            state,
            n.resource_group,
            "\n".join(accel) or "-",
            f"{fmt_amount(n.allocated.get('cpu', 0))}/{fmt_amount(n.capacity.get('cpu', 0))}",
            f"{mem_used:.1f}/{mem_cap:.1f}",
            "\n".join(util) or "-",
        )
    return table


def _short(slot: str) -> str:
    return slot.removesuffix(".device")


@nodes_app.command("get")
def nodes_get(
    node: str = typer.Argument(..., help="Node id."), output: Output = OutputOpt
) -> None:
    """Show one node with each device, its health and allocation."""
    found = call(lambda api: api.nodes.get(node))

    def table() -> Table:
        rows: list[tuple[str, Any]] = [
            ("id", found.id),
            ("status", found.status),
            ("cordoned", found.cordoned),
            ("draining", found.draining),
            ("group", found.resource_group),
            ("url", found.advertised_url),
            ("runtime", f"{found.runtime} ({found.architecture})"),
            ("capacity", found.capacity),
            ("allocated", found.allocated),
            ("containers", found.containers),
            ("heartbeat", found.last_heartbeat_at),
        ]
        for device in found.devices:
            used = found.device_allocated.get(device.get("id", ""), {})
            text = f"{device.get('slot_name', '?')} {device.get('model', '')}".strip()
            text += f" health={device.get('health', '?')}"
            text += f" used={fmt_value(used)}" if used else " free"
            rows.append((f"device {device.get('id', '?')}", text))
        return kv_table(rows)

    emit(found, output, table)


def _node_action(verb: str, node: str, output: Output) -> None:
    found = call(lambda api: getattr(api.nodes, verb)(node))
    emit(found, output, lambda: node_table([found]))


@nodes_app.command("cordon")
def nodes_cordon(node: str = typer.Argument(...), output: Output = OutputOpt) -> None:
    """Place no new sessions on a node; running ones stay."""
    _node_action("cordon", node, output)


@nodes_app.command("uncordon")
def nodes_uncordon(node: str = typer.Argument(...), output: Output = OutputOpt) -> None:
    """Let the scheduler use a node again."""
    _node_action("uncordon", node, output)


@nodes_app.command("drain")
def nodes_drain(node: str = typer.Argument(...), output: Output = OutputOpt) -> None:
    """Cordon a node and let its sessions finish (for maintenance)."""
    _node_action("drain", node, output)


# Resource groups ------------------------------------------------------------------------


@groups_app.command("ls")
def groups_ls(output: Output = OutputOpt) -> None:
    """List resource groups and their scheduling policy."""
    groups = call(lambda api: _collect(api.groups.list()))

    def table() -> Table:
        t = make_table("NAME", "POLICY", "PLACEMENT", "BACKFILL", "PROJECTS")
        for g in groups:
            projects = str(len(g.project_ids)) if g.project_ids else "all"
            t.add_row(g.name, g.scheduling_policy, g.placement, f"{g.backfill_wait_s}s", projects)
        return t

    emit(groups, output, table)


@groups_app.command("create")
def groups_create(
    name: str = typer.Argument(..., show_default=False),
    policy: str = typer.Option("fifo", "--policy", help="fifo, priority or drf."),
    placement: str = typer.Option("binpack", "--placement", help="binpack or spread."),
    project: list[str] = typer.Option(
        [], "--project", "-p", help="Only these projects may use it (repeatable; default all)."
    ),
    output: Output = OutputOpt,
) -> None:
    """Create a resource group."""

    async def create(api: AsyncBerth) -> Any:
        ids = [await project_id(api, p) for p in project]
        return await api.groups.create(
            name=name, scheduling_policy=policy, placement=placement, project_ids=ids
        )

    group = call(create)
    emit(group, output, lambda: kv_table(group.model_dump().items()))


async def _group_id(api: AsyncBerth, ref: str) -> str:
    async for group in api.groups.list(name=ref):
        if group.name == ref:
            return str(group.id)
    return ref


@groups_app.command("update")
def groups_update(
    name: str = typer.Argument(..., help="Group name or id."),
    policy: str | None = typer.Option(None, "--policy"),
    placement: str | None = typer.Option(None, "--placement"),
    output: Output = OutputOpt,
) -> None:
    """Change a group's scheduling policy or placement."""
    fields = {
        k: v for k, v in (("scheduling_policy", policy), ("placement", placement)) if v is not None
    }

    async def update(api: AsyncBerth) -> Any:
        return await api.groups.update(await _group_id(api, name), **fields)

    group = call(update)
    emit(group, output, lambda: kv_table(group.model_dump().items()))


@groups_app.command("rm")
def groups_rm(name: str = typer.Argument(..., help="Group name or id.")) -> None:
    """Delete a resource group."""

    async def delete(api: AsyncBerth) -> None:
        await api.groups.delete(await _group_id(api, name))

    call(delete)
    err.print(f"deleted resource group {name}")


# Quotas ---------------------------------------------------------------------------------

KindArg = typer.Argument(..., help="domain, project, user or user_in_project.")
TargetArg = typer.Argument(..., help="Id or name of the domain, project or user.")
ScopeOpt = typer.Option(None, "--project", "-p", help="The project, for user_in_project.")


async def _target(
    api: AsyncBerth, *, kind: str, target: str, project: str | None
) -> tuple[str, str | None]:
    """The target's id (from an id or a name) and, for user_in_project, the project's id."""
    if kind == "domain":
        return await domain_id(api, target), None
    if kind == "project":
        return await project_id(api, target), None
    scope = await project_id(api, project) if project else None
    return await user_id(api, target), scope


def _check_kind(kind: str, project: str | None) -> None:
    if kind not in QUOTA_KINDS:
        fail(ExitCode.USAGE, f"quota kind must be one of {', '.join(QUOTA_KINDS)}, not {kind!r}")
    if kind == "user_in_project" and not project:
        fail(ExitCode.USAGE, "user_in_project quotas need --project")


@quotas_app.command("set")
def quotas_set(
    kind: str = KindArg,
    target: str = TargetArg,
    slot: list[str] = typer.Option(
        [], "--slot", "-s", help="SLOT=TOTAL, e.g. cuda.device=8, mem=256g (repeatable)."
    ),
    max_sessions: int | None = typer.Option(None, "--max-sessions", help="Concurrent sessions."),
    max_pending: int | None = typer.Option(None, "--max-pending", help="Queued sessions."),
    max_lifetime: str | None = typer.Option(None, "--max-lifetime", help="e.g. 7d."),
    idle_timeout: str | None = typer.Option(None, "--idle-timeout", help="Default, e.g. 1h."),
    group: list[str] = typer.Option([], "--group", help="Allowed resource groups."),
    project: str | None = ScopeOpt,
    output: Output = OutputOpt,
) -> None:
    """Set (replace) a quota. Limits left out are unlimited; 0 forbids a slot.

    Examples:

      berth admin quotas set project vision --slot cuda.device=8 --max-sessions 20

      berth admin quotas set user_in_project alice --project vision --slot cuda.device=2
    """
    _check_kind(kind, project)
    limits: dict[str, Any] = {"slots": parse_amounts(slot, "--slot")}
    for key, value in (
        ("max_concurrent_sessions", max_sessions),
        ("max_pending_sessions", max_pending),
        ("max_session_lifetime_s", duration_or_usage(max_lifetime, "--max-lifetime")),
        ("default_idle_timeout_s", duration_or_usage(idle_timeout, "--idle-timeout")),
        ("allowed_resource_groups", group or None),
    ):
        if value is not None:
            limits[key] = value

    async def put(api: AsyncBerth) -> QuotaOut:
        target_id, scope = await _target(api, kind=kind, target=target, project=project)
        return await api.quotas.set(kind, target_id, limits, project_id=scope)

    quota = call(put)
    emit(quota, output, lambda: quota_table([quota]))


@quotas_app.command("show")
def quotas_show(
    kind: str = KindArg,
    target: str = TargetArg,
    project: str | None = ScopeOpt,
    output: Output = OutputOpt,
) -> None:
    """Show a quota with what is in use against it."""
    _check_kind(kind, project)

    async def get(api: AsyncBerth) -> QuotaOut:
        target_id, scope = await _target(api, kind=kind, target=target, project=project)
        return await api.quotas.get(kind, target_id, project_id=scope)

    quota = call(get)
    emit(quota, output, lambda: quota_table([quota]))


@quotas_app.command("rm")
def quotas_rm(
    kind: str = KindArg, target: str = TargetArg, project: str | None = ScopeOpt
) -> None:
    """Remove a quota (the target becomes unlimited at this level)."""
    _check_kind(kind, project)

    async def delete(api: AsyncBerth) -> None:
        target_id, scope = await _target(api, kind=kind, target=target, project=project)
        await api.quotas.delete(kind, target_id, project_id=scope)

    call(delete)
    err.print(f"removed the {kind} quota of {target}")


@quotas_app.command("ls")
def quotas_ls(output: Output = OutputOpt) -> None:
    """List every quota you may see."""
    quotas = call(lambda api: api.quotas.list())
    emit(quotas, output, lambda: quota_table(quotas))


@quotas_app.command("mine")
def quotas_mine(output: Output = OutputOpt) -> None:
    """Your occupancy against every limit that applies to you."""
    quotas = call(lambda api: api.quotas.mine())
    emit(quotas, output, lambda: quota_table(quotas))


def quota_table(quotas: list[QuotaOut]) -> Table:
    table = make_table("SCOPE", "LIMIT", "USED")
    for q in quotas:
        limits: list[tuple[str, str, str]] = [
            (slot, fmt_amount(total), fmt_amount(q.used.get(slot, 0)))
            for slot, total in sorted(q.slots.items())
        ]
        if q.max_concurrent_sessions is not None:
            limits.append(("sessions", str(q.max_concurrent_sessions), str(q.sessions)))
        if q.max_pending_sessions is not None:
            limits.append(("pending", str(q.max_pending_sessions), "-"))
        if q.max_session_lifetime_s is not None:
            limits.append(("lifetime", f"{q.max_session_lifetime_s}s", "-"))
        if q.allowed_resource_groups is not None:
            limits.append(("groups", ",".join(q.allowed_resource_groups) or "none", "-"))
        scope = _scope_label(q.scope)
        for i, (name, limit, used) in enumerate(limits or [("-", "unlimited", "-")]):
            table.add_row(scope if i == 0 else "", f"{name}={limit}", used)
    return table


def _scope_label(scope: str) -> str:
    """`project:1f0c...` → `project:1f0c2a4b` so the table fits 80 columns."""
    parts = scope.split(":")
    return ":".join(p[:8] if len(p) == 36 else p for p in parts)


# Usage ----------------------------------------------------------------------------------


@admin_app.command("usage")
def usage(
    since: str = typer.Option("30d", "--since", help="Period length back from --end, e.g. 7d."),
    start: datetime | None = typer.Option(None, "--start", help="Start (ISO); wins over --since."),
    end: datetime | None = typer.Option(None, "--end", help="End (ISO); default now."),
    by: str = typer.Option("project", "--by", help="project or user."),
    output: Output = OutputOpt,
) -> None:
    """GPU-hours, CPU-hours and sessions per project or user over a period.

    Examples:

      berth admin usage --since 7d

      berth admin usage --start 2025-01-01 --end 2025-02-01 --by user -o json
    """
    if by not in ("project", "user"):
        fail(ExitCode.USAGE, "--by must be project or user")
    until = _aware(end) if end else None
    seconds = duration_or_usage(since, "--since") or 0
    begin = _aware(start) if start else (until or datetime.now(UTC)) - timedelta(seconds=seconds)
    report = call(lambda api: api.usage.report(start=begin, end=until, group_by=by))
    emit(report, output, lambda: usage_table(report))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def usage_table(report: UsageReport) -> Table:
    table = make_table(report.group_by.upper(), "SESSIONS", "GPU-HOURS", "CPU-H", "MEM GiB-H")
    table.caption = f"{report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M} UTC"
    for line in report.items:
        gpu = " ".join(f"{_short(k)} {v:.2f}" for k, v in sorted(line.gpu_hours.items()))
        table.add_row(
            line.name or str(line.group_id)[:8],
            str(line.sessions),
            gpu or "0",
            f"{line.cpu_hours:.2f}",
            f"{line.mem_gib_hours:.2f}",
        )
    return table
