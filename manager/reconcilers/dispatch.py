"""Dispatch: scheduled (and stalled preparing) sessions → containers created on their nodes.

Lease → mark preparing and build the requests (short tx) → call the agents with no transaction
open → apply the outcome under the lease token. Transient failures (agent unreachable, 5xx) are
retried with backoff; permanent ones (image missing, bad request) end the session through
`terminating` with the reason, so the terminate loop removes anything half-created and frees
the resources exactly once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from agent.contract import ContainerInfo, CreateContainerRequest, MountSpec, ServicePort
from manager.clients.agent import AgentError
from manager.db.models import AgentRow, SessionContainerRow, SessionRow
from manager.lifecycle.record import release_lease, transition
from manager.lifecycle.session import Reason, SessionStatus
from manager.reconcilers.base import Leased, lease_sessions, load_leased
from manager.reconcilers.context import LoopContext
from manager.services.app_proxy import app_env
from manager.services.ledger import to_amounts

log = logging.getLogger("berth.manager.dispatch")

LEASE_S = 120.0
BATCH = 16
MAX_TRANSIENT_ATTEMPTS = 5
SESSION_LABEL = "ai.berth.session-id"
# The node is still busy with something the manager already freed (an orphan container it
# re-adopted after a restart, about to be reaped): retry shortly instead of failing the session.
BUSY_CODES = frozenset({"device_busy", "insufficient_capacity", "ports_exhausted"})


@dataclass(frozen=True)
class Job:
    container_id: str
    base_url: str
    request: CreateContainerRequest


async def dispatch_step(ctx: LoopContext) -> bool:
    leased = await lease_sessions(
        ctx.db_factory,
        statuses=[SessionStatus.SCHEDULED, SessionStatus.PREPARING],
        owner=ctx.owner,
        now=ctx.clock(),
        lease_s=LEASE_S,
        limit=BATCH,
    )
    if not leased:
        return False
    await asyncio.gather(*(dispatch_one(ctx, item) for item in leased))
    return True


async def dispatch_one(ctx: LoopContext, leased: Leased) -> None:
    jobs = await _prepare(ctx, leased)
    if not jobs:
        return
    results = await asyncio.gather(*(_create(ctx, job) for job in jobs), return_exceptions=True)
    await _apply(ctx, leased, jobs, list(results))


async def _prepare(ctx: LoopContext, leased: Leased) -> list[Job]:
    now = ctx.clock()
    async with ctx.db_factory() as db, db.begin():
        session = await load_leased(db, leased)
        if session is None or session.status not in (
            SessionStatus.SCHEDULED,
            SessionStatus.PREPARING,
        ):
            return []
        if session.status is SessionStatus.SCHEDULED:
            transition(db, session, SessionStatus.PREPARING, reason=Reason.DISPATCHING, now=now)
        containers = (
            await db.scalars(
                select(SessionContainerRow)
                .where(
                    SessionContainerRow.session_id == session.id,
                    SessionContainerRow.attempt == session.attempt,
                )
                .order_by(SessionContainerRow.index)
            )
        ).all()
        urls = dict(
            (
                await db.execute(
                    select(AgentRow.id, AgentRow.advertised_url).where(
                        AgentRow.id.in_([c.node_id for c in containers])
                    )
                )
            ).all()
        )
        jobs = []
        for container in containers:
            if container.state == "running":
                continue
            container.state = "creating"
            jobs.append(
                Job(
                    container_id=container.id,
                    base_url=urls[container.node_id],
                    request=build_request(
                        session,
                        container,
                        cluster_size=len(containers),
                        secret_key=ctx.config.secret_key.get_secret_value(),
                    ),
                )
            )
        return jobs


def build_request(
    session: SessionRow, container: SessionContainerRow, *, cluster_size: int, secret_key: str
) -> CreateContainerRequest:
    # The app token and prefix are added here, after the user's env so ours wins, and never
    # stored on the session, so the token does not show in the API.
    env = {
        **session.env,
        **app_env(secret_key, session.id),
        "BERTH_SESSION_ID": str(session.id),
        "BERTH_SESSION_NAME": session.name,
        "BERTH_CONTAINER_INDEX": str(container.index),
        "BERTH_CLUSTER_SIZE": str(cluster_size),
    }
    return CreateContainerRequest(
        container_id=container.id,
        session_id=str(session.id),
        image=session.image,
        command=session.command,
        env=env,
        slots=to_amounts(container.slots),
        devices=container.devices or None,
        mounts=[
            MountSpec(
                host_path=m["host_path"],
                container_path=m["container_path"],
                mode=m["mode"],
                fuse=m.get("fuse"),
            )
            for m in session.mounts
            if "host_path" in m
        ],
        ports=[ServicePort.model_validate(p) for p in session.ports],
        labels={SESSION_LABEL: str(session.id), "ai.berth.session-name": session.name},
    )


async def _create(ctx: LoopContext, job: Job) -> ContainerInfo:
    client = ctx.agent(job.base_url)
    try:
        return await client.create_container(job.request)
    except AgentError as exc:
        if exc.code == "container_exists":  # a retry after we lost the first answer
            return await client.get_container(job.container_id)
        raise


async def _apply(ctx: LoopContext, leased: Leased, jobs: list[Job], results: list[Any]) -> None:
    now = ctx.clock()
    async with ctx.db_factory() as db, db.begin():
        session = await load_leased(db, leased)
        if session is None:
            return  # another manager took over; it will redo the idempotent creates
        failure: AgentError | Exception | None = None
        for job, result in zip(jobs, results, strict=True):
            container = await db.get(SessionContainerRow, job.container_id)
            if container is None:
                continue
            if isinstance(result, ContainerInfo):
                container.ports = [p.model_dump(mode="json") for p in result.ports]
                if container.state == "creating":
                    container.state = "running"
                    container.started_at = result.started_at or now
            elif isinstance(result, BaseException):
                failure = failure or result  # type: ignore[assignment]
        if session.status is not SessionStatus.PREPARING:
            release_lease(
                session
            )  # ended meanwhile (exit, user terminate): terminate loop owns it
            return
        if failure is None:
            transition(db, session, SessionStatus.RUNNING, reason=Reason.STARTED, now=now)
            session.last_activity_at = now
            release_lease(session)
            return
        transient = isinstance(failure, AgentError) and (
            failure.transient or failure.code in BUSY_CODES
        )
        session.dispatch_attempts += 1
        if transient and session.dispatch_attempts < MAX_TRANSIENT_ATTEMPTS:
            delay = min(2**session.dispatch_attempts, 30)
            session.next_attempt_at = now + timedelta(seconds=delay)
            session.status_message = f"retrying start in {delay}s: {_describe(failure)}"
            release_lease(session)
            log.warning(
                "dispatch retry",
                extra={"session_id": str(session.id), "error": _describe(failure)},
            )
            return
        reason = (
            Reason.IMAGE_NOT_FOUND
            if isinstance(failure, AgentError) and failure.code == "image_not_found"
            else Reason.DISPATCH_FAILED
        )
        transition(
            db,
            session,
            SessionStatus.TERMINATING,
            reason=reason,
            now=now,
            message=_describe(failure),
        )
        release_lease(session)
    ctx.wake("terminate")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AgentError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"
