"""Handlers for nodes: the admin API, and the internal endpoints agents call with the cluster
secret (heartbeat, container events)."""

from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from agent.contract import ContainerEvent, NodeReport
from manager.api.framework import Call
from manager.api.schemas.agents import AgentOut, EventsAck, HeartbeatAck
from manager.api.schemas.common import PageResponse
from manager.db.models import AgentRow
from manager.errors import InvalidRequest
from manager.services import agents as agent_service
from manager.services import container_events
from manager.services.ledger import to_amounts

_EVENTS = TypeAdapter(list[ContainerEvent])


def agent_out(row: AgentRow) -> AgentOut:
    ledger = row.allocated or {}
    return AgentOut(
        id=row.id,
        resource_group=row.resource_group,
        advertised_url=row.advertised_url,
        architecture=row.architecture,
        runtime=row.runtime,
        agent_version=row.agent_version,
        status=row.status,
        cordoned=row.cordoned,
        draining=row.draining,
        capacity=to_amounts(row.capacity),
        allocated=to_amounts(ledger.get("slots")),
        utilisation=agent_service.utilisation(row),
        devices=row.devices,
        device_allocated={d: to_amounts(v) for d, v in (ledger.get("devices") or {}).items()},
        runtime_health=row.runtime_health,
        plugin_errors=row.plugin_errors,
        containers=len(row.reported_containers),
        last_heartbeat_at=row.last_heartbeat_at,
        lost_at=row.lost_at,
        created_at=row.created_at,
    )


async def list_agents(call: Call) -> PageResponse[AgentOut]:
    q = call.query
    page = await agent_service.list_agents(
        call.tx,
        call.me,
        resource_group=q.resource_group,
        status=q.status,
        cursor=q.cursor,
        limit=q.limit,
    )
    return PageResponse[AgentOut](
        items=[agent_out(r) for r in page.items], next_cursor=page.next_cursor
    )


async def get_agent(call: Call) -> AgentOut:
    return agent_out(await agent_service.get_agent(call.tx, agent_id=call.path("agent_id")))


async def cordon(call: Call) -> AgentOut:
    row = await agent_service.set_schedulable(
        call.tx, call.me, agent_id=call.path("agent_id"), cordoned=True, draining=False
    )
    return agent_out(row)


async def uncordon(call: Call) -> AgentOut:
    row = await agent_service.set_schedulable(
        call.tx, call.me, agent_id=call.path("agent_id"), cordoned=False, draining=False
    )
    _wake(call, "schedule")
    return agent_out(row)


async def drain(call: Call) -> AgentOut:
    """Stop placing work on the node; running sessions finish on their own."""
    row = await agent_service.set_schedulable(
        call.tx, call.me, agent_id=call.path("agent_id"), cordoned=True, draining=True
    )
    return agent_out(row)


async def heartbeat(call: Call) -> HeartbeatAck:
    report = await _parse(call, NodeReport)
    result = await agent_service.record_heartbeat(call.tx, report=report, now=call.now)
    ended = await container_events.reconcile_reported(
        call.tx,
        node_id=report.node_id,
        reported=report.containers,
        reported_at=report.reported_at,
        now=call.now,
    )
    if ended:
        _wake(call, "terminate")
    if result.came_back or result.orphans:
        _wake(call, "reap")
    if result.came_back:
        _wake(call, "schedule")
    return HeartbeatAck(orphans=result.orphans)


async def container_events_in(call: Call) -> EventsAck:
    raw = await call.request.read()
    try:
        events = _EVENTS.validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest("invalid events", code="validation_error", details=str(exc)) from None
    ended = await container_events.apply_events(
        call.tx, node_id=call.path("agent_id"), events=events, now=call.now
    )
    if ended:
        _wake(call, "terminate")
    return EventsAck(applied=len(events))


async def _parse(call: Call, model: type[NodeReport]) -> NodeReport:
    raw = await call.request.read()
    try:
        return model.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(
            "invalid node report", code="validation_error", details=str(exc)
        ) from None


def _wake(call: Call, loop: str) -> None:
    call.wake(loop)
