"""How every background loop runs: poll on an interval, wake early on a hint, never die.

Loops that work on rows lease them first (`lease_sessions`): a short transaction stamps a token
and expiry on rows picked with SKIP LOCKED; the slow network I/O happens with no transaction
open; the result is applied with an update guarded by id + token, and dropped if the token
changed (another manager took over after the lease expired). Every loop is therefore safe on
several manager replicas, and a lost wake-up costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from manager.db.engine import DbFactory
from manager.db.models import SessionRow
from manager.lifecycle.session import SessionStatus

log = logging.getLogger("berth.manager.loops")


@dataclass
class Loop:
    """One background loop: `step` runs every `interval_s`, or sooner after `wake()`.
    `step` returns True when it did work, so the loop runs again at once to drain a backlog."""

    name: str
    step: Callable[[], Awaitable[bool]]
    interval_s: float
    _wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        backoff = self.interval_s
        while True:
            busy = False
            try:
                busy = await self.step()
                backoff = self.interval_s
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad cycle must not kill the loop; the next cycle retries with backoff.
                log.exception("loop step failed", extra={"loop": self.name})
                backoff = min(backoff * 2, 30.0)
            if busy:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)


class Loops:
    """The registry of a manager's loops, started and stopped together."""

    def __init__(self, loops: Sequence[Loop]) -> None:
        self.by_name = {loop.name: loop for loop in loops}
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self, name: str) -> None:
        loop = self.by_name.get(name)
        if loop is not None:
            loop.wake()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(loop.run_forever(), name=f"loop:{loop.name}")
            for loop in self.by_name.values()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []


@dataclass(frozen=True)
class Leased:
    session_id: uuid.UUID
    token: uuid.UUID


async def lease_sessions(
    db_factory: DbFactory,
    *,
    statuses: Sequence[SessionStatus],
    owner: str,
    now: datetime,
    lease_s: float,
    limit: int,
) -> list[Leased]:
    """Stamp a fresh lease on up to `limit` sessions in `statuses` that are free or whose lease
    expired, and that are due (`next_attempt_at` passed)."""
    token = uuid.uuid4()
    async with db_factory() as db, db.begin():
        ids = (
            await db.scalars(
                select(SessionRow.id)
                .where(
                    SessionRow.status.in_(list(statuses)),
                    or_(SessionRow.lease_expires_at.is_(None), SessionRow.lease_expires_at < now),
                    or_(SessionRow.next_attempt_at.is_(None), SessionRow.next_attempt_at <= now),
                )
                .order_by(SessionRow.status_changed_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not ids:
            return []
        await db.execute(
            update(SessionRow)
            .where(SessionRow.id.in_(ids))
            .values(
                lease_token=token,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_s),
            )
        )
    return [Leased(session_id=i, token=token) for i in ids]


async def load_leased(db: AsyncSession, leased: Leased) -> SessionRow | None:
    """The leased row, locked, or None if the lease was lost to another manager."""
    return await db.scalar(
        select(SessionRow)
        .where(and_(SessionRow.id == leased.session_id, SessionRow.lease_token == leased.token))
        .with_for_update()
    )
