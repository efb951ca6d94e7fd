"""Handlers for sessions: create, read, list, why pending, history, SSE events, logs, stop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import datetime

from aiohttp import web
from sqlalchemy import select

from manager.api.framework import Call
from manager.api.schemas.common import PageResponse
from manager.api.schemas.sessions import (
    ContainerOut,
    HistoryList,
    HistoryOut,
    SessionOut,
    VerdictOut,
)
from manager.clients.agent import AgentClient, AgentError
from manager.db.models import AgentRow, SessionContainerRow, SessionHistoryRow, SessionRow
from manager.errors import NotFound, Unavailable
from manager.lifecycle.session import TERMINAL, SessionStatus
from manager.services import sessions as session_service
from manager.services.ledger import to_amounts
from manager.services.vfolders import open_storage, resolve_mounts
from manager.state import STATE_KEY, ManagerState

SSE_POLL_S = 0.5  # history is polled this often while a client listens; events only wake it


def session_out(
    row: SessionRow, containers: list[SessionContainerRow] | None = None
) -> SessionOut:
    verdict = row.pending_verdict
    return SessionOut(
        id=row.id,
        name=row.name,
        type=row.type,
        status=row.status,
        status_reason=row.status_reason,
        status_message=row.status_message,
        result=row.result,
        exit_code=row.exit_code,
        image=row.image,
        command=row.command,
        resource_group=row.resource_group,
        domain_id=row.domain_id,
        project_id=row.project_id,
        user_id=row.user_id,
        resources=to_amounts(row.containers_spec[0]) if row.containers_spec else {},
        containers=len(row.containers_spec),
        multi_node=row.multi_node,
        priority=row.priority,
        tags=row.tags,
        mounts=[
            {k: v for k, v in m.items() if k not in ("host_path", "fuse")} for m in row.mounts
        ],
        idle_timeout_s=row.idle_timeout_s,
        max_duration_s=row.max_duration_s,
        max_retries=row.max_retries,
        attempt=row.attempt,
        created_at=row.created_at,
        scheduled_at=row.scheduled_at,
        started_at=row.started_at,
        terminated_at=row.terminated_at,
        pending=VerdictOut.model_validate(verdict) if verdict else None,
        container_list=[ContainerOut.model_validate(c) for c in containers or []],
    )


async def create_session(call: Call) -> SessionOut:
    spec = session_service.NewSession(**call.body.model_dump(mode="python"))
    if spec.mounts:
        state = call.request.app[STATE_KEY]
        storage = (
            open_storage(state.config, state.http, state.storage)
            if state.storage.configured
            else None
        )
        mounts = await resolve_mounts(call.tx, call.me, mounts=spec.mounts, storage=storage)
        spec = dataclasses.replace(spec, mounts=mounts)
    row = await session_service.create_session(call.tx, call.me, spec=spec, now=call.now)
    call.wake("schedule")
    return session_out(row)


async def list_sessions(call: Call) -> PageResponse[SessionOut]:
    q = call.query
    statuses = q.status if isinstance(q.status, list) else ([q.status] if q.status else None)
    page = await session_service.list_sessions(
        call.tx,
        call.me,
        statuses=statuses,
        project_id=q.project_id,
        user_id=q.user_id,
        type_=q.type,
        name=q.name,
        include_terminal=q.all,
        cursor=q.cursor,
        limit=q.limit,
    )
    return PageResponse[SessionOut](
        items=[session_out(r) for r in page.items], next_cursor=page.next_cursor
    )


async def get_session(call: Call) -> SessionOut:
    row = await session_service.find_session(call.tx, call.me, ref=call.path("session_id"))
    containers = await session_service.containers_of(call.tx, session_id=row.id)
    return session_out(row, containers)


async def why(call: Call) -> VerdictOut:
    row = await session_service.find_session(call.tx, call.me, ref=call.path("session_id"))
    if row.status is not SessionStatus.PENDING:
        return VerdictOut(code="not_pending", message=f"the session is {row.status.value}")
    if not row.pending_verdict:
        return VerdictOut(code="not_evaluated", message="waiting for the next scheduling cycle")
    return VerdictOut.model_validate(row.pending_verdict)


async def history(call: Call) -> HistoryList:
    row = await session_service.find_session(call.tx, call.me, ref=call.path("session_id"))
    items = await session_service.history(call.tx, call.me, session_id=row.id)
    return HistoryList(items=[HistoryOut.model_validate(h) for h in items])


async def terminate(call: Call) -> SessionOut:
    row = await session_service.find_session(call.tx, call.me, ref=call.path("session_id"))
    row = await session_service.terminate_session(
        call.tx, call.me, session_id=row.id, now=call.now
    )
    call.wake("terminate")
    return session_out(row)


async def events(call: Call) -> web.StreamResponse:
    """Server-sent events: one `status` event per recorded transition until the session ends."""
    state = call.request.app[STATE_KEY]
    async with state.db_factory() as db:
        row = await session_service.find_session(db, call.me, ref=call.path("session_id"))
        session_id = row.id
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(call.request)
    try:
        await _stream_history(state, response, session_id)
    except ConnectionResetError:
        pass  # the client went away (a browser navigating); nothing to clean up
    return response


async def _stream_history(
    state: ManagerState, response: web.StreamResponse, session_id: uuid.UUID
) -> None:
    last_id = 0
    while True:
        async with state.db_factory() as db:
            rows = (
                await db.scalars(
                    select(SessionHistoryRow)
                    .where(
                        SessionHistoryRow.session_id == session_id, SessionHistoryRow.id > last_id
                    )
                    .order_by(SessionHistoryRow.id)
                )
            ).all()
        for item in rows:
            last_id = item.id
            payload = {
                "status": item.status.value,
                "reason": item.reason,
                "message": item.message,
                "at": _iso(item.at),
            }
            await response.write(
                f"id: {item.id}\nevent: status\ndata: {json.dumps(payload)}\n\n".encode()
            )
            if item.status in TERMINAL:
                await response.write_eof()
                return
        await asyncio.sleep(SSE_POLL_S)


async def logs(call: Call) -> web.StreamResponse:
    """The output of one container, streamed from its node (followed with ?follow=true)."""
    state = call.request.app[STATE_KEY]
    async with state.db_factory() as db:
        row = await session_service.find_session(db, call.me, ref=call.path("session_id"))
        containers = await session_service.containers_of(db, session_id=row.id)
        match = [c for c in containers if c.index == call.query.container]
        if not match:
            raise NotFound("the session has no container yet; it may still be pending")
        container = match[0]  # newest attempt first
        if container.state in ("destroyed", "lost"):
            if container.log_tail is None:
                raise NotFound("the container is gone and left no output")
            return web.Response(text=container.log_tail, content_type="text/plain")
        url = await db.scalar(
            select(AgentRow.advertised_url).where(AgentRow.id == container.node_id)
        )
    assert state.http is not None and url is not None
    client = AgentClient(
        base_url=url, secret=state.config.cluster_secret.get_secret_value(), http=state.http
    )
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    try:
        try:
            async for chunk in client.logs(container.id, follow=call.query.follow):
                if not response.prepared:
                    await response.prepare(call.request)
                await response.write(chunk)
        except AgentError as exc:
            if not response.prepared:
                if exc.code == "container_not_found":
                    raise NotFound("the container is gone; its logs went with it") from None
                raise Unavailable(f"the node did not return logs: {exc.message}") from None
        if not response.prepared:
            await response.prepare(call.request)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client stopped following; the agent stream closes with us
    return response


def _iso(value: datetime) -> str:
    return value.isoformat()
