"""Fold what agents say about containers (pushed events, and the container list in each
heartbeat as the polling fallback) into container and session rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent.contract import ContainerEvent, ContainerEventKind, ContainerInfo, ContainerState
from manager.db.models import SessionContainerRow, SessionRow
from manager.lifecycle.record import hand_over
from manager.lifecycle.session import Reason, SessionStatus

# A container the manager believes started but the agent no longer lists is declared gone only
# after this grace, so a heartbeat built just before the container started cannot kill it.
VANISHED_GRACE_S = 15.0


@dataclass(frozen=True)
class Exited:
    container_id: str
    exit_code: int | None
    oom: bool
    at: datetime


async def apply_events(
    db: AsyncSession, *, node_id: str, events: Iterable[ContainerEvent], now: datetime
) -> set[uuid.UUID]:
    """Apply pushed events; returns the sessions that moved to terminating."""
    exits: list[Exited] = []
    for event in events:
        container = await db.get(SessionContainerRow, event.container_id)
        if container is None or container.node_id != node_id:
            continue  # unknown container: the reaper handles orphans
        if event.kind is ContainerEventKind.STARTED and container.state in (
            "assigned",
            "creating",
        ):
            container.state = "running"
            container.started_at = container.started_at or event.at
        elif event.kind in (ContainerEventKind.EXITED, ContainerEventKind.OOM):
            exits.append(
                Exited(
                    event.container_id,
                    event.exit_code,
                    event.kind is ContainerEventKind.OOM,
                    event.at,
                )
            )
        elif event.kind is ContainerEventKind.DESTROYED:
            container.state = "destroyed"
    return await record_exits(db, exits, now=now)


async def reconcile_reported(
    db: AsyncSession,
    *,
    node_id: str,
    reported: list[ContainerInfo],
    reported_at: datetime,
    now: datetime,
) -> set[uuid.UUID]:
    """The heartbeat's container list is the truth the events may have missed."""
    by_id = {c.container_id: c for c in reported}
    active = (
        await db.scalars(
            select(SessionContainerRow).where(
                SessionContainerRow.node_id == node_id,
                SessionContainerRow.released_at.is_(None),
                SessionContainerRow.state.in_(["creating", "running"]),
            )
        )
    ).all()
    exits: list[Exited] = []
    for container in active:
        info = by_id.get(container.id)
        if info is None:
            started = container.started_at or container.allocated_at
            if container.state == "running" and started < reported_at - timedelta(
                seconds=VANISHED_GRACE_S
            ):
                exits.append(Exited(container.id, None, False, reported_at))
        elif info.state is ContainerState.EXITED:
            exits.append(
                Exited(container.id, info.exit_code, info.oom_killed, info.finished_at or now)
            )
        elif info.state is ContainerState.RUNNING and container.state == "creating":
            container.state = "running"
            container.started_at = info.started_at or now
    return await record_exits(db, exits, now=now)


async def record_exits(db: AsyncSession, exits: list[Exited], *, now: datetime) -> set[uuid.UUID]:
    """Mark containers exited; a session whose containers ended moves to terminating with the
    reason the exit codes give (0 → success, else failure, OOM kill → oom_killed)."""
    ended: set[uuid.UUID] = set()
    for exit_ in exits:
        container = await db.get(SessionContainerRow, exit_.container_id)
        if container is None or container.state in ("exited", "destroyed"):
            continue
        container.state = "exited"
        container.exit_code = exit_.exit_code
        container.oom_killed = exit_.oom
        container.finished_at = exit_.at
        session = await db.scalar(
            select(SessionRow).where(SessionRow.id == container.session_id).with_for_update()
        )
        if session is None or container.attempt != session.attempt:
            continue
        if session.status not in (SessionStatus.PREPARING, SessionStatus.RUNNING):
            continue
        siblings = (
            await db.scalars(
                select(SessionContainerRow).where(
                    SessionContainerRow.session_id == session.id,
                    SessionContainerRow.attempt == session.attempt,
                )
            )
        ).all()
        failed = exit_.oom or exit_.exit_code != 0
        # Any failure ends the whole session; success waits for every container.
        if not failed and any(c.state not in ("exited", "destroyed") for c in siblings):
            continue
        if exit_.oom:
            reason, message = Reason.OOM_KILLED, "a container was killed for using too much memory"
        elif exit_.exit_code is None:
            reason, message = Reason.EXIT_FAILURE, "a container disappeared from its node"
        elif failed:
            reason, message = Reason.EXIT_FAILURE, f"exited with code {exit_.exit_code}"
        else:
            reason, message = Reason.EXIT_SUCCESS, "exited with code 0"
        session.exit_code = exit_.exit_code if exit_.exit_code is not None else -1
        hand_over(db, session, SessionStatus.TERMINATING, reason=reason, now=now, message=message)
        ended.add(session.id)
    return ended
