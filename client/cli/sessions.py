"""`berth login|whoami|ps|get|logs|events|why|rm`: the everyday read and stop commands."""

from __future__ import annotations

import asyncio
import sys

import typer
from rich.table import Table

from client.cli.common import (
    Output,
    OutputOpt,
    age,
    call,
    emit,
    err,
    fail,
    fmt_amount,
    fmt_value,
    kv_table,
    load_config,
    make_table,
    plain,
)
from client.cli.exitcodes import ExitCode
from client.config import ClientConfig
from client.sdk.client import AsyncBerth
from client.sdk.errors import BerthAPIError
from client.sdk.sessions import StatusEvent
from manager.api.schemas.sessions import SessionOut, VerdictOut

SessionArg = typer.Argument(..., help="Session id or name.", show_default=False)


def login(
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Manager URL, e.g. http://127.0.0.1:8080 (or BERTH_ENDPOINT)."
    ),
    token: str | None = typer.Option(
        None, "--token", help="API token from `berth admin tokens create` (or BERTH_TOKEN)."
    ),
) -> None:
    """Check an endpoint and token with the manager, then save them to the config file.

    Examples:

      berth login --endpoint http://manager:8080 --token bt_...

      BERTH_ENDPOINT=http://manager:8080 BERTH_TOKEN=bt_... berth login
    """
    current = load_config()
    config = ClientConfig(
        endpoint=(endpoint or current.endpoint).rstrip("/"),
        token=token or current.token,
        gpu_slot=current.gpu_slot,
    )
    me = call(lambda api: api.whoami(), config=config)
    path = config.save()
    err.print(f"logged in to {config.endpoint} as {me.user.username}; saved to {path}")


def whoami(output: Output = OutputOpt) -> None:
    """Show the user behind the configured token and their project roles."""
    me = call(lambda api: api.whoami())
    emit(
        me,
        output,
        lambda: kv_table(
            [
                ("user", me.user.username),
                ("id", me.user.id),
                ("role", me.user.role),
                ("domain", me.user.domain_id),
                ("projects", [f"{p} ({r.value})" for p, r in me.project_roles.items()]),
            ]
        ),
    )


def ps(
    all_: bool = typer.Option(False, "--all", "-a", help="Include finished sessions."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project id."),
    status: list[str] = typer.Option([], "--status", help="Only these statuses (repeatable)."),
    limit: int = typer.Option(200, "--limit", min=1, help="At most this many sessions."),
    output: Output = OutputOpt,
) -> None:
    """List your sessions (active ones unless --all), newest first.

    Examples:

      berth ps

      berth ps --all -o json | jq '.[] | select(.result == "failure") | .name'
    """

    async def fetch(api: AsyncBerth) -> list[SessionOut]:
        items: list[SessionOut] = []
        listing = api.sessions.list(
            status=status or None,
            project_id=project,
            include_terminal=all_,
            page_size=min(limit, 200),
        )
        async for item in listing:
            items.append(item)
            if len(items) >= limit:
                break
        return items

    sessions = call(fetch)
    emit(sessions, output, lambda: session_table(sessions))


def session_table(sessions: list[SessionOut]) -> Table:
    table = make_table("ID", "NAME", "STATUS", "INFO", "GPU", "AGE")
    for s in sessions:
        gpus = sum((v for k, v in s.resources.items() if k.endswith(".device")), start=0)
        table.add_row(
            str(s.id)[:8],
            s.name,
            s.status.value,
            _info(s),
            fmt_amount(gpus) if gpus else "-",
            age(s.created_at),
        )
    return table


def _info(s: SessionOut) -> str:
    if s.status.value == "pending" and s.pending is not None:
        return s.pending.code
    if s.exit_code is not None:
        return f"{s.status_reason} ({s.exit_code})"
    return s.status_reason


def get(ref: str = SessionArg, output: Output = OutputOpt) -> None:
    """Show one session: status, reason, resources, containers, timing."""
    session = call(lambda api: api.sessions.get(ref))
    emit(session, output, lambda: session_detail(session))


def session_detail(s: SessionOut) -> Table:
    rows: list[tuple[str, object]] = [
        ("id", s.id),
        ("name", s.name),
        ("type", s.type),
        ("status", f"{s.status.value} ({s.status_reason})"),
        ("message", s.status_message or None),
        ("result", s.result),
        ("exit code", s.exit_code),
        ("image", s.image),
        ("command", " ".join(s.command or []) or None),
        ("resources", s.resources),
        ("group", s.resource_group),
        ("project", s.project_id),
        ("priority", s.priority),
        ("created", s.created_at),
        ("started", s.started_at),
        ("ended", s.terminated_at),
    ]
    if s.pending is not None:
        rows.append(("waiting", f"{s.pending.code}: {s.pending.message}"))
    for c in s.container_list:
        devices = " ".join(f"{k}={','.join(v)}" for k, v in c.devices.items())
        rows.append(
            (f"container {c.index}", f"{c.state} on {c.node_id} {devices}".strip()),
        )
    return kv_table(rows)


def why(ref: str = SessionArg, output: Output = OutputOpt) -> None:
    """Why a session is still pending: the scheduler's reason and queue position."""
    verdict = call(lambda api: api.sessions.why(ref))
    emit(verdict, output, lambda: verdict_table(verdict))


def verdict_table(v: VerdictOut) -> Table:
    rows: list[tuple[str, object]] = [("code", v.code), ("reason", v.message)]
    if v.queue_position is not None:
        rows.append(("queue position", v.queue_position))
    for key, value in v.details.items():
        rows.append((key.replace("_", " "), fmt_value(plain(value))))
    return kv_table(rows)


def logs(
    ref: str = SessionArg,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new output."),
    container: int = typer.Option(0, "--container", help="Container index (multi-container)."),
) -> None:
    """Print a session's output (the stored tail once its container is gone)."""

    async def stream(api: AsyncBerth) -> None:
        async for chunk in api.sessions.logs(ref, follow=follow, container=container):
            sys.stdout.write(chunk)
            sys.stdout.flush()

    try:
        call(stream)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def events(ref: str = SessionArg, output: Output = OutputOpt) -> None:
    """Print status changes as they happen, until the session ends.

    One line per change; with -o json one JSON object per line."""

    async def stream(api: AsyncBerth) -> None:
        async for event in api.sessions.events(ref):
            _print_event(event, output)

    try:
        call(stream)
    except KeyboardInterrupt:
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


def _print_event(event: StatusEvent, output: Output) -> None:
    data = {
        "status": event.status.value,
        "reason": event.reason,
        "message": event.message,
        "at": event.at.isoformat(),
    }
    if output is Output.TABLE:
        line = f"{fmt_value(event.at)}  {event.status.value:<11} {event.reason}"
        sys.stdout.write(line + (f"  {event.message}" if event.message else "") + "\n")
    elif output is Output.JSON:
        import json

        sys.stdout.write(json.dumps(data) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump([data], sort_keys=False))
    sys.stdout.flush()


def rm(
    refs: list[str] = typer.Argument(..., help="Session ids or names.", show_default=False),
    output: Output = OutputOpt,
) -> None:
    """Cancel pending sessions or terminate running ones."""

    async def stop(api: AsyncBerth) -> tuple[list[SessionOut], list[BerthAPIError]]:
        results = await asyncio.gather(
            *(api.sessions.terminate(r) for r in refs), return_exceptions=True
        )
        done = [r for r in results if isinstance(r, SessionOut)]
        errors = [r for r in results if isinstance(r, BerthAPIError)]
        for other in results:
            if isinstance(other, BaseException) and not isinstance(other, BerthAPIError):
                raise other
        return done, errors

    done, errors = call(stop)
    emit(done, output, lambda: session_table(done))
    if errors:
        from client.cli.exitcodes import for_http_status

        for e in errors[:-1]:
            err.print(f"[red]berth:[/red] {e.code}: {e.message}")
        last = errors[-1]
        fail(for_http_status(last.status), f"{last.code}: {last.message}")
