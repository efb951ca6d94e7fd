"""`berth run`: submit a batch job, show why it waits, stream its output, and exit with its exit
code (or a documented Berth code when the infrastructure, not the job, failed)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.status import Status

from client.cli.common import (
    call,
    duration_or_usage,
    err,
    fail,
    load_config,
    parse_amounts,
    parse_pairs,
)
from client.cli.exitcodes import ExitCode, for_session
from client.sdk.client import AsyncBerth
from client.sdk.errors import BerthAPIError, BerthConnectionError
from client.sdk.sessions import TERMINAL_STATUSES, StatusEvent
from manager.api.schemas.sessions import SessionOut

WHY_REFRESH_S = 2.0
LOG_RETRY_S = 0.5
LOG_DRAIN_S = 10.0  # after the end, how long the log stream may take to finish


@dataclass
class Watch:
    """What `berth run` knows while it waits; read by the Ctrl-C handler."""

    session: SessionOut | None = None
    printed: int = 0  # characters of output already written (skipped when a stream restarts)
    streamed: bool = False  # a log stream ran to its end
    lines: list[str] = field(default_factory=list)


def run(
    command: list[str] = typer.Argument(
        None, help="The command and its arguments, after `--`.", show_default=False
    ),
    image: str = typer.Option(
        "berth/python:3.11", "--image", "-i", envvar="BERTH_IMAGE", help="Container image."
    ),
    gpus: int = typer.Option(0, "--gpus", "-g", min=0, help="Number of GPUs (see --gpu-slot)."),
    gpu_slot: str | None = typer.Option(
        None,
        "--gpu-slot",
        help="Slot --gpus asks for (default cuda.device; BERTH_GPU_SLOT or gpu_slot in config).",
    ),
    resource: list[str] = typer.Option(
        [], "--resource", "-r", help="SLOT=AMOUNT, e.g. cpu=4, mem=16g (repeatable)."
    ),
    mount: list[str] = typer.Option(
        [], "--mount", "-m", help="FOLDER:PATH[:ro] virtual folder mount (repeatable)."
    ),
    env: list[str] = typer.Option([], "--env", "-e", help="K=V environment (repeatable)."),
    name: str | None = typer.Option(None, "--name", "-n", help="Session name."),
    group: str = typer.Option("default", "--group", help="Resource group."),
    project: str | None = typer.Option(None, "--project", "-p", help="Project id or name."),
    priority: int = typer.Option(0, "--priority", help="-1000..1000; higher runs first."),
    timeout: str | None = typer.Option(
        None, "--timeout", "-t", help="Stop the job after this long: 90s, 10m, 2h, 1d."
    ),
    retries: int = typer.Option(0, "--retries", min=0, max=10, help="Retries after failures."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Print the session id and exit."),
    cancel_on_interrupt: bool | None = typer.Option(
        None,
        "--cancel-on-interrupt/--ask-on-interrupt",
        help="On Ctrl-C cancel the job without asking (default when stdin is not a terminal).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the job's output."),
) -> None:
    """Run a batch job: show why it waits, stream its output, exit with its exit code.

    Berth's own failures exit 64-79 (docs/cli.md): 75 infrastructure, 65 rejected, 79
    interrupted.

    Examples:

      berth run --image berth/busybox:test -- sh -c 'echo hi; exit 3'

      berth run --gpus 2 -r cpu=8 -r mem=32g --timeout 2h -- python train.py

      id=$(berth run --detach -- python job.py) && berth logs -f "$id"
    """
    if not command:
        fail(ExitCode.USAGE, "no command given: berth run [OPTIONS] -- COMMAND [ARGS...]")
    config = load_config()
    resources: dict[str, Any] = {"cpu": 1, "mem": "1g"}
    resources.update(parse_amounts(resource, "--resource"))
    if gpus:
        resources[gpu_slot or config.gpu_slot] = gpus
    spec: dict[str, Any] = {
        "image": image,
        "type": "batch",
        "command": list(command),
        "resources": resources,
        "env": parse_pairs(env, "--env"),
        "resource_group": group,
        "priority": priority,
        "max_retries": retries,
        "mounts": [_mount(m) for m in mount],
    }
    if name:
        spec["name"] = name
    max_duration = duration_or_usage(timeout, "--timeout")
    if max_duration is not None:
        spec["max_duration_s"] = max_duration

    watch = Watch()
    show = not quiet

    async def main(api: AsyncBerth) -> SessionOut | None:
        if project:
            spec["project_id"] = await resolve_project(api, project)
        watch.session = await api.sessions.create(spec)
        if show or detach:
            err.print(f"berth: session {watch.session.name} ({watch.session.id}) queued")
        if detach:
            return None
        return await follow(api, watch, show=show)

    try:
        final = call(main, config=config)
    except KeyboardInterrupt:
        interrupted(watch, cancel_on_interrupt)
    if final is None:
        assert watch.session is not None
        sys.stdout.write(f"{watch.session.id}\n")
        return
    code = for_session(
        status=final.status.value, reason=final.status_reason, exit_code=final.exit_code
    )
    if code != 0 and show:
        err.print(f"berth: {_ending(final)}", soft_wrap=True, markup=False)
    raise typer.Exit(code)


def _mount(text: str) -> dict[str, str]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        fail(ExitCode.USAGE, f"--mount expects FOLDER:/PATH[:ro|rw], got {text!r}")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        fail(ExitCode.USAGE, f"--mount mode must be ro or rw, got {parts[2]!r}")
    return {"folder": parts[0], "path": parts[1], "mode": parts[2] if len(parts) == 3 else "rw"}


async def resolve_project(api: AsyncBerth, ref: str) -> str:
    """A project id from an id or a name."""
    with contextlib.suppress(ValueError):
        return str(uuid.UUID(ref))
    async for project in api.projects.list(name=ref):
        if project.name == ref:
            return str(project.id)
    raise BerthAPIError("not_found", f"no project named {ref!r}", 404)


def _ending(s: SessionOut) -> str:
    detail = f": {s.status_message}" if s.status_message else ""
    if s.status_reason in ("exit_failure", "oom_killed") and s.exit_code is not None:
        return f"session {s.name} {s.status_reason} with exit code {s.exit_code}{detail}"
    return f"session {s.name} ended {s.status.value} ({s.status_reason}){detail}"


async def follow(api: AsyncBerth, watch: Watch, *, show: bool) -> SessionOut:
    """Wait for the session to end, showing why it is pending and streaming its output."""
    assert watch.session is not None
    ref = str(watch.session.id)
    events: asyncio.Queue[StatusEvent | None] = asyncio.Queue()
    listener = asyncio.create_task(_listen(api, ref, events))
    spinner = _Pending(show=show)
    log_task: asyncio.Task[None] | None = None
    status = watch.session.status.value
    next_why = 0.0
    loop = asyncio.get_running_loop()
    try:
        while status not in TERMINAL_STATUSES:
            if status == "pending" and loop.time() >= next_why:
                with contextlib.suppress(BerthAPIError, BerthConnectionError):
                    verdict = await api.sessions.why(ref)
                    if verdict.code != "not_pending":
                        spinner.update(f"{verdict.code}: {verdict.message}")
                next_why = loop.time() + WHY_REFRESH_S
            try:
                event = await asyncio.wait_for(events.get(), timeout=WHY_REFRESH_S)
            except TimeoutError:
                continue
            if event is None:  # the stream broke: read the session instead
                status = (await api.sessions.get(ref)).status.value
                listener = asyncio.create_task(_poll(api, ref, events))
                continue
            if event.status.value == "pending" and status != "pending":
                if log_task is not None:
                    log_task.cancel()
                    log_task = None
                watch.printed = 0
                if show:
                    err.print(f"berth: back in the queue ({event.reason}: {event.message})")
            status = event.status.value
            if status != "pending":
                spinner.stop()
                if show and status in ("scheduled", "running"):
                    err.print(f"berth: {status}", markup=False)
            if status in ("running", "terminating") and log_task is None:
                log_task = asyncio.create_task(_stream_logs(api, ref, watch))
        spinner.stop()
        if log_task is not None:
            with contextlib.suppress(TimeoutError, BerthAPIError, BerthConnectionError):
                await asyncio.wait_for(asyncio.shield(log_task), timeout=LOG_DRAIN_S)
            log_task.cancel()
        if not watch.streamed:
            await _final_output(api, ref, watch)
        return await api.sessions.get(ref)
    finally:
        spinner.stop()
        listener.cancel()
        if log_task is not None:
            log_task.cancel()


async def _listen(api: AsyncBerth, ref: str, queue: asyncio.Queue[StatusEvent | None]) -> None:
    try:
        async for event in api.sessions.events(ref):
            await queue.put(event)
    except (BerthConnectionError, BerthAPIError):
        await queue.put(None)


async def _poll(api: AsyncBerth, ref: str, queue: asyncio.Queue[StatusEvent | None]) -> None:
    """Fallback when the event stream is unavailable: synthesize events from reads."""
    last = ""
    while True:
        with contextlib.suppress(BerthConnectionError):
            s = await api.sessions.get(ref)
            if s.status.value != last:
                last = s.status.value
                await queue.put(
                    StatusEvent(
                        status=s.status, reason=s.status_reason, message="", at=s.created_at
                    )
                )
        await asyncio.sleep(1.0)


async def _stream_logs(api: AsyncBerth, ref: str, watch: Watch) -> None:
    """Follow the output; reconnect (skipping what was printed) when the stream breaks or the
    container is not there yet."""
    while True:
        seen = 0
        try:
            async for chunk in api.sessions.logs(ref, follow=True):
                seen = _write_new(chunk, seen, watch)
            watch.streamed = True
            return
        except BerthAPIError as exc:
            if exc.status not in (404, 503):
                raise
        except BerthConnectionError:
            pass
        await asyncio.sleep(LOG_RETRY_S)


async def _final_output(api: AsyncBerth, ref: str, watch: Watch) -> None:
    """The stored output of a job that ended before its stream could be followed."""
    seen = 0
    with contextlib.suppress(BerthAPIError, BerthConnectionError):
        async for chunk in api.sessions.logs(ref, follow=False):
            seen = _write_new(chunk, seen, watch)


def _write_new(chunk: str, seen: int, watch: Watch) -> int:
    """Write the part of `chunk` past what was printed before; the new count of seen chars."""
    start = max(0, watch.printed - seen)
    if start < len(chunk):
        sys.stdout.write(chunk[start:])
        sys.stdout.flush()
        watch.printed += len(chunk) - start
    return seen + len(chunk)


class _Pending:
    """The pending line: a spinner on a terminal, a printed line per new reason otherwise."""

    def __init__(self, *, show: bool) -> None:
        self.show = show
        self.last = ""
        self.status: Status | None = None

    def update(self, text: str) -> None:
        if not self.show or text == self.last:
            return
        self.last = text
        if err.is_terminal:
            if self.status is None:
                self.status = err.status(f"pending: {text}")
                self.status.start()
            else:
                self.status.update(f"pending: {text}")
        else:
            err.print(f"berth: pending: {text}", markup=False, soft_wrap=True)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def interrupted(watch: Watch, cancel: bool | None) -> None:
    """Ctrl-C: cancel the job (asked on a terminal unless --cancel-on-interrupt), then exit 79."""
    session = watch.session
    if session is None:
        fail(ExitCode.INTERRUPTED, "interrupted before the session was created")
    if cancel is None:
        cancel = not sys.stdin.isatty()
        if not cancel:
            try:
                cancel = typer.confirm(f"\nCancel session {session.name}?", default=True)
            except (KeyboardInterrupt, EOFError, typer.Abort):
                cancel = False
    if not cancel:
        fail(
            ExitCode.INTERRUPTED,
            f"session {session.name} keeps running; follow it with `berth logs -f {session.id}`",
        )
    stopped = call(lambda api: api.sessions.terminate(str(session.id)))
    fail(ExitCode.INTERRUPTED, f"session {session.name} is {stopped.status.value}")
