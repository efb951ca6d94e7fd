"""The idle-culling loop. Cheap SQL first (only running interactive sessions whose last known
activity is older than their idle timeout are candidates), then the slow facts with no
transaction open (Jupyter's kernel list, accelerator utilisation from the agents' reports),
then one short transaction per session: lock the row, re-judge with its fresh columns, and move
it to terminating (reason idle_timeout) if it is still running and still idle. The terminate
loop destroys the containers; mounted folders keep their data."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from manager.db.models import AgentRow, SessionContainerRow, SessionRow
from manager.lifecycle.record import hand_over
from manager.lifecycle.session import Reason, SessionStatus, SessionType
from manager.reconcilers.context import LoopContext
from manager.services import idle
from manager.services.app_proxy import app_prefix, app_token

log = logging.getLogger("berth.manager.idle")

BATCH = 100
JUPYTER_SERVICE = "jupyter"


@dataclass(frozen=True)
class Candidate:
    facts: idle.SessionFacts
    jupyter: tuple[str, int] | None  # host, port of the session's Jupyter, if it has one
    devices: list[dict[str, list[str]]]
    node_ids: list[str]


async def idle_step(
    ctx: LoopContext, *, util_threshold_pct: float = idle.DEFAULT_UTIL_THRESHOLD_PCT
) -> bool:
    now = ctx.clock()
    candidates, agent_devices = await _candidates(ctx, now=now)
    if not candidates:
        return False
    culled = 0
    for candidate in candidates:
        facts = await _with_slow_facts(ctx, candidate, agent_devices)
        decision = idle.judge(now, facts, util_threshold_pct=util_threshold_pct)
        if decision.verdict is idle.Verdict.CULL:
            culled += await _cull(ctx, facts, now=now, util_threshold_pct=util_threshold_pct)
        elif decision.active_at is not None:
            await _note_activity(ctx, facts.session_id, decision.active_at)
    if culled:
        ctx.wake("terminate")
    return len(candidates) == BATCH and culled > 0


async def _candidates(
    ctx: LoopContext, *, now: datetime
) -> tuple[list[Candidate], dict[str, list[dict[str, Any]]]]:
    last_seen = func.greatest(SessionRow.started_at, SessionRow.last_activity_at)
    async with ctx.db_factory() as db, db.begin():
        rows = (
            await db.scalars(
                select(SessionRow)
                .where(
                    SessionRow.status == SessionStatus.RUNNING,
                    SessionRow.type == SessionType.INTERACTIVE,
                    SessionRow.idle_timeout_s > 0,
                    last_seen + func.make_interval(0, 0, 0, 0, 0, 0, SessionRow.idle_timeout_s)
                    <= now,
                )
                .order_by(last_seen)
                .limit(BATCH)
            )
        ).all()
        if not rows:
            return [], {}
        containers = (
            await db.scalars(
                select(SessionContainerRow)
                .where(SessionContainerRow.session_id.in_([r.id for r in rows]))
                .order_by(SessionContainerRow.index)
            )
        ).all()
        by_session: dict[uuid.UUID, list[SessionContainerRow]] = {}
        attempts = {r.id: r.attempt for r in rows}
        for c in containers:
            if c.attempt == attempts[c.session_id] and c.released_at is None:
                by_session.setdefault(c.session_id, []).append(c)
        node_ids = {c.node_id for cs in by_session.values() for c in cs}
        agents = (await db.scalars(select(AgentRow).where(AgentRow.id.in_(node_ids)))).all()
        agent_devices = {a.id: list(a.devices or []) for a in agents}
        hosts = {a.id: urlsplit(a.advertised_url).hostname or "" for a in agents}
        candidates = [_candidate(row, by_session.get(row.id, []), hosts) for row in rows]
    return candidates, agent_devices


def _candidate(
    row: SessionRow, containers: list[SessionContainerRow], hosts: dict[str, str]
) -> Candidate:
    jupyter = None
    for container in containers:
        for port in container.ports or []:
            if port.get("name") == JUPYTER_SERVICE and jupyter is None:
                host = str(port.get("host_ip") or "")
                if host in ("", "0.0.0.0", "::"):  # published on every address of the node
                    host = hosts.get(container.node_id, "")
                if host:
                    jupyter = (host, int(port["host_port"]))
    return Candidate(
        facts=idle.SessionFacts(
            session_id=row.id,
            type=row.type,
            status=row.status,
            idle_timeout_s=row.idle_timeout_s,
            started_at=row.started_at,
            last_activity_at=row.last_activity_at,
        ),
        jupyter=jupyter,
        devices=[dict(c.devices or {}) for c in containers],
        node_ids=[c.node_id for c in containers],
    )


async def _with_slow_facts(
    ctx: LoopContext, candidate: Candidate, agent_devices: dict[str, list[dict[str, Any]]]
) -> idle.SessionFacts:
    facts = candidate.facts
    kernels = None
    if candidate.jupyter is not None:
        host, port = candidate.jupyter
        kernels = await idle.query_kernels(
            ctx.http,
            host=host,
            port=port,
            base_path=f"{app_prefix(facts.session_id)}{JUPYTER_SERVICE}/",
            token=app_token(ctx.config.secret_key.get_secret_value(), facts.session_id),
        )
    reported = [d for node in candidate.node_ids for d in agent_devices.get(node, [])]
    util = idle.accelerator_utilisation(candidate.devices, reported)
    return replace(facts, kernels=kernels, accelerator_util_pct=util)


async def _cull(
    ctx: LoopContext, facts: idle.SessionFacts, *, now: datetime, util_threshold_pct: float
) -> int:
    async with ctx.db_factory() as db, db.begin():
        row = await db.scalar(
            select(SessionRow).where(SessionRow.id == facts.session_id).with_for_update()
        )
        if row is None or row.status is not SessionStatus.RUNNING:
            return 0
        # Traffic may have arrived while we asked Jupyter: judge again on the locked row.
        fresh = replace(facts, status=row.status, last_activity_at=row.last_activity_at)
        decision = idle.judge(now, fresh, util_threshold_pct=util_threshold_pct)
        if decision.verdict is not idle.Verdict.CULL:
            return 0
        hand_over(
            db,
            row,
            SessionStatus.TERMINATING,
            reason=Reason.IDLE_TIMEOUT,
            now=now,
            message=f"{decision.reason}; data in mounted folders is kept",
        )
    log.info(
        "idle session culled",
        extra={"session_id": str(facts.session_id), "reason": decision.reason},
    )
    return 1


async def _note_activity(ctx: LoopContext, session_id: uuid.UUID, at: datetime) -> None:
    """Keep what Jupyter or the accelerators told us, so the cheap SQL filter skips the session
    until it may really be idle."""
    async with ctx.db_factory() as db, db.begin():
        await db.execute(
            update(SessionRow)
            .where(
                SessionRow.id == session_id,
                func.coalesce(SessionRow.last_activity_at, at - timedelta(seconds=1)) < at,
            )
            .values(last_activity_at=at)
        )
