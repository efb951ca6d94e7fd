"""The database side of scheduling: read one snapshot for the pure planner, then commit its plan
with a guarded re-check against fresh, locked rows.

Commit = one transaction: lock the plan's nodes (by id), then its quota scopes (by key); skip
sessions no longer pending (SKIP LOCKED + status check); re-check every container against the
locked ledger and every scope against the locked usage; charge and record what still fits.
Whatever does not fit stays pending for the next cycle. Two managers committing at once
serialize on the node and scope rows, so neither can over-commit a device or a quota."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.db.models import (
    AgentRow,
    AgentStatus,
    QuotaUsageRow,
    ResourceGroupProjectRow,
    ResourceGroupRow,
    ResourcePolicyRow,
    SessionContainerRow,
    SessionRow,
)
from manager.lifecycle.record import transition
from manager.lifecycle.session import Reason, SessionStatus
from manager.scheduler import (
    Assignment,
    DeviceState,
    DrfUsage,
    Node,
    OrderingKind,
    PendingSession,
    PlacementKind,
    Plan,
    QuotaLimit,
    ResourceGroup,
    Scope,
    ScopeKind,
    ScopeUsage,
    SlotMap,
    Snapshot,
)
from manager.services.ledger import (
    Amounts,
    add,
    charge_agent,
    charge_scope,
    container_device_amounts,
    lock_agents,
    lock_scopes,
    session_scopes,
    to_amounts,
    to_json,
)

MAX_PENDING_PER_CYCLE = 20000


async def build_snapshot(db: AsyncSession, *, limit: int = MAX_PENDING_PER_CYCLE) -> Snapshot:
    sessions = (
        await db.scalars(
            select(SessionRow)
            .where(SessionRow.status == SessionStatus.PENDING)
            .order_by(SessionRow.created_at, SessionRow.id)
            .limit(limit)
        )
    ).all()
    pending = tuple(
        PendingSession(
            session_id=str(s.id),
            created_at=s.created_at,
            resource_group=s.resource_group,
            domain_id=str(s.domain_id),
            project_id=str(s.project_id),
            user_id=str(s.user_id),
            containers=tuple(SlotMap(to_amounts(c)) for c in s.containers_spec),
            image=s.image,
            architecture=s.architecture,
            priority=s.priority,
            multi_node=s.multi_node,
            waiting_since=s.waiting_since,
        )
        for s in sessions
    )
    agents = (await db.scalars(select(AgentRow).where(AgentRow.status == AgentStatus.ALIVE))).all()
    nodes = tuple(node_of(a) for a in agents)
    groups = await _resource_groups(db)
    policies = (await db.scalars(select(ResourcePolicyRow))).all()
    quotas = {
        _scope(p.scope): QuotaLimit(
            slots=to_amounts(p.slots), max_sessions=p.max_concurrent_sessions
        )
        for p in policies
    }
    usage_rows = (await db.scalars(select(QuotaUsageRow))).all()
    usage = {
        _scope(u.scope): ScopeUsage(slots=SlotMap(to_amounts(u.slots)), sessions=u.sessions)
        for u in usage_rows
    }
    return Snapshot(
        pending=pending,
        nodes=nodes,
        resource_groups=groups,
        quotas=quotas,
        usage=usage,
        drf_usage=await _drf_usage(db),
    )


def node_of(agent: AgentRow) -> Node:
    capacity = to_amounts(agent.capacity)
    ledger = agent.allocated or {}
    used = to_amounts(ledger.get("slots"))
    held = {d: to_amounts(v) for d, v in (ledger.get("devices") or {}).items()}
    free_node = {k: v - used.get(k, Decimal(0)) for k, v in capacity.items() if "." not in k}
    devices = []
    for dev in agent.devices:
        if dev.get("health", "healthy") != "healthy":
            continue
        device_id = dev["id"]
        share_slot, share_cap = dev.get("share_slot_name"), dev.get("share_capacity")
        cap = {share_slot: Decimal(str(share_cap))} if share_slot and share_cap else {}
        holding = held.get(device_id, {})
        whole_free = not holding
        if holding.get(dev["slot_name"]):
            free: Amounts = {}
        else:
            free = {k: v - holding.get(k, Decimal(0)) for k, v in cap.items()}
        devices.append(
            DeviceState(
                device_id=device_id,
                slot=dev["slot_name"],
                whole_free=whole_free,
                numa_node=dev.get("numa_node"),
                capacity=SlotMap(cap),
                free=SlotMap({k: v for k, v in free.items() if v > 0}),
            )
        )
    return Node(
        node_id=agent.id,
        resource_group=agent.resource_group,
        architecture=agent.architecture,
        total=SlotMap(capacity),
        free=SlotMap({k: v for k, v in free_node.items() if v > 0}),
        devices=tuple(devices),
        images=frozenset(i["name"] for i in agent.images),
        schedulable=not (agent.cordoned or agent.draining)
        and agent.runtime_health.get("status", "ok") == "ok",
    )


@dataclass(frozen=True)
class CommitResult:
    committed: list[str]
    skipped: list[str]


async def commit_plan(db: AsyncSession, plan: Plan, *, now: datetime) -> CommitResult:
    assignments = list(plan.assignments.values())
    if not assignments:
        return CommitResult([], [])
    ids = [uuid.UUID(a.session_id) for a in assignments]
    node_ids = {c.node_id for a in assignments for c in a.containers}
    agents = await lock_agents(db, node_ids)
    sessions = {
        s.id: s
        for s in (
            await db.scalars(
                select(SessionRow)
                .where(SessionRow.id.in_(ids), SessionRow.status == SessionStatus.PENDING)
                .with_for_update(skip_locked=True)
            )
        ).all()
    }
    scope_keys = {
        k
        for s in sessions.values()
        for k in session_scopes(domain_id=s.domain_id, project_id=s.project_id, user_id=s.user_id)
    }
    usage = await lock_scopes(db, scope_keys)
    policies = {
        p.scope: p
        for p in (
            await db.scalars(
                select(ResourcePolicyRow).where(ResourcePolicyRow.scope.in_(scope_keys))
            )
        ).all()
    }
    committed, skipped = [], []
    new_rows: list[SessionContainerRow] = []
    for assignment in assignments:
        session = sessions.get(uuid.UUID(assignment.session_id))
        if session is None or not _fits_nodes(assignment, agents):
            skipped.append(assignment.session_id)
            continue
        total = _total(assignment)
        keys = session_scopes(
            domain_id=session.domain_id, project_id=session.project_id, user_id=session.user_id
        )
        if not _fits_quota(keys, total, usage, policies):
            skipped.append(assignment.session_id)
            continue
        session.attempt += 1
        for container in assignment.containers:
            slots = dict(container.slots.items())
            devices = {k: list(v) for k, v in container.device_ids.items()}
            charge_agent(
                agents[container.node_id],
                slots=slots,
                devices=container_device_amounts(slots, devices),
            )
            new_rows.append(
                SessionContainerRow(
                    id=f"{session.id.hex[:12]}-{session.attempt}-{container.container_index}",
                    session_id=session.id,
                    attempt=session.attempt,
                    index=container.container_index,
                    node_id=container.node_id,
                    domain_id=session.domain_id,
                    project_id=session.project_id,
                    user_id=session.user_id,
                    resource_group=session.resource_group,
                    slots=to_json(slots),
                    devices=devices,
                    allocated_at=now,
                )
            )
        for key in keys:
            charge_scope(usage[key], slots=total, sessions=1)
        transition(db, session, SessionStatus.SCHEDULED, reason=Reason.PLACED, now=now)
        session.dispatch_attempts = 0
        session.next_attempt_at = None
        committed.append(assignment.session_id)
    db.add_all(new_rows)
    await db.flush()
    return CommitResult(committed, skipped)


async def write_verdicts(db: AsyncSession, plan: Plan, *, now: datetime) -> int:
    """Store why each unplaced session waits, in one batched UPDATE (executemany)."""
    rows = [
        {
            "sid": uuid.UUID(verdict.session_id),
            "verdict": {
                "code": verdict.code.value,
                "message": verdict.message,
                "queue_position": verdict.queue_position,
                "details": _verdict_details(verdict),
                "at": now.isoformat(),
            },
        }
        for verdict in plan.verdicts.values()
    ]
    if not rows:
        return 0
    table = cast(Table, SessionRow.__table__)
    await db.execute(
        table.update()
        .where(table.c.id == bindparam("sid"), table.c.status == SessionStatus.PENDING.value)
        .values(pending_verdict=bindparam("verdict")),
        rows,
    )
    return len(rows)


def _verdict_details(verdict: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if verdict.quota:
        out["quota"] = [
            {
                "scope": str(q.scope),
                "slot": q.slot,
                "limit": str(q.limit),
                "used": str(q.used),
                "requested": str(q.requested),
                "excess": str(q.excess),
            }
            for q in verdict.quota
        ]
    if verdict.requested:
        out["requested"] = {k: str(v) for k, v in verdict.requested.items()}
    if verdict.largest_free:
        out["largest_free"] = {k: str(v) for k, v in verdict.largest_free.items()}
    if verdict.reserved_for:
        out["reserved_for"] = list(verdict.reserved_for)
    return out


def _fits_nodes(assignment: Assignment, agents: Mapping[str, AgentRow]) -> bool:
    """Re-check the assignment against each node's locked ledger (and apply nothing)."""
    pending_use: dict[str, Amounts] = defaultdict(dict)
    pending_dev: dict[str, dict[str, Amounts]] = defaultdict(dict)
    for container in assignment.containers:
        agent = agents.get(container.node_id)
        if (
            agent is None
            or agent.status is not AgentStatus.ALIVE
            or agent.cordoned
            or agent.draining
        ):
            return False
        capacity = to_amounts(agent.capacity)
        ledger = agent.allocated or {}
        used = add(to_amounts(ledger.get("slots")), pending_use[agent.id])
        slots = dict(container.slots.items())
        for slot, amount in slots.items():
            if "." in slot:
                continue
            if used.get(slot, Decimal(0)) + amount > capacity.get(slot, Decimal(0)):
                return False
        pending_use[agent.id] = add(pending_use[agent.id], slots)
        known = {d["id"]: d for d in agent.devices if d.get("health", "healthy") == "healthy"}
        held = {d: to_amounts(v) for d, v in (ledger.get("devices") or {}).items()}
        devices = {k: list(v) for k, v in container.device_ids.items()}
        for device_id, amounts in container_device_amounts(slots, devices).items():
            info = known.get(device_id)
            if info is None:
                return False
            holding = add(held.get(device_id, {}), pending_dev[agent.id].get(device_id, {}))
            for slot, amount in amounts.items():
                if slot == info["slot_name"]:
                    if holding:  # a whole device must be entirely free
                        return False
                elif slot == info.get("share_slot_name"):
                    cap = Decimal(str(info.get("share_capacity") or 0))
                    if (
                        holding.get(info["slot_name"])
                        or holding.get(slot, Decimal(0)) + amount > cap
                    ):
                        return False
                else:
                    return False
            pending_dev[agent.id][device_id] = add(holding, amounts)
        for slot, amount in slots.items():
            if slot.endswith(".device") and len(devices.get(slot, [])) != amount:
                return False
    return True


def _total(assignment: Assignment) -> Amounts:
    total: Amounts = {}
    for container in assignment.containers:
        total = add(total, dict(container.slots.items()))
    return total


def _fits_quota(
    keys: Iterable[str],
    total: Amounts,
    usage: Mapping[str, QuotaUsageRow],
    policies: Mapping[str, ResourcePolicyRow],
) -> bool:
    for key in keys:
        policy = policies.get(key)
        if policy is None:
            continue
        row = usage[key]
        used = to_amounts(row.slots)
        for slot, limit in to_amounts(policy.slots).items():
            if used.get(slot, Decimal(0)) + total.get(slot, Decimal(0)) > limit:
                return False
        if (
            policy.max_concurrent_sessions is not None
            and row.sessions + 1 > policy.max_concurrent_sessions
        ):
            return False
    return True


def _scope(key: str) -> Scope:
    kind, _, ident = key.partition(":")
    return Scope(ScopeKind(kind), ident)


async def _resource_groups(db: AsyncSession) -> dict[str, ResourceGroup]:
    groups = (await db.scalars(select(ResourceGroupRow))).all()
    allowed: dict[uuid.UUID, set[str]] = defaultdict(set)
    for gid, pid in (
        await db.execute(
            select(ResourceGroupProjectRow.resource_group_id, ResourceGroupProjectRow.project_id)
        )
    ).all():
        allowed[gid].add(str(pid))
    return {
        g.name: ResourceGroup(
            name=g.name,
            allowed_projects=frozenset(allowed[g.id]),
            ordering=OrderingKind(g.scheduling_policy),
            placement=PlacementKind(g.placement),
            backfill_wait_threshold_s=float(g.backfill_wait_s) if g.backfill_wait_s else None,
        )
        for g in groups
    }


async def _drf_usage(db: AsyncSession) -> dict[str, DrfUsage]:
    rows = (
        await db.execute(
            select(
                SessionContainerRow.resource_group,
                SessionContainerRow.user_id,
                SessionContainerRow.project_id,
                SessionContainerRow.slots,
            ).where(SessionContainerRow.released_at.is_(None))
        )
    ).all()
    users: dict[str, dict[str, Amounts]] = defaultdict(dict)
    projects: dict[str, dict[str, Amounts]] = defaultdict(dict)
    for group, user_id, project_id, slots in rows:
        amounts = to_amounts(slots)
        users[group][str(user_id)] = add(users[group].get(str(user_id), {}), amounts)
        projects[group][str(project_id)] = add(projects[group].get(str(project_id), {}), amounts)
    return {
        group: DrfUsage(
            users={u: SlotMap(a) for u, a in users[group].items()},
            projects={p: SlotMap(a) for p, a in projects[group].items()},
        )
        for group in set(users) | set(projects)
    }
