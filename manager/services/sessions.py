"""Session use cases behind the API: create (validated against nodes, images and quotas), read,
list, and cancel/terminate. Scheduling and dispatch happen in the reconcilers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.db.models import (
    AgentRow,
    ProjectRole,
    ProjectRow,
    ResourceGroupProjectRow,
    ResourceGroupRow,
    ResourcePolicyRow,
    SessionContainerRow,
    SessionHistoryRow,
    SessionRow,
    UserRole,
)
from manager.errors import Forbidden, InvalidRequest, NotFound, RateLimited
from manager.lifecycle.record import hand_over, transition
from manager.lifecycle.session import (
    ACTIVE,
    TERMINAL,
    Reason,
    SessionStatus,
    SessionType,
)
from manager.scheduler.slots import InvalidSlotValue, parse_amount
from manager.services import images
from manager.services.ledger import Amounts, session_scopes, to_amounts, to_json
from manager.services.pagination import Page, paginate
from manager.services.tenancy import get_project


@dataclass(frozen=True)
class NewSession:
    """A validated create request, in domain terms."""

    image: str
    type: SessionType
    name: str | None
    project_id: uuid.UUID | None
    resource_group: str
    architecture: str
    command: list[str] | None
    env: dict[str, str]
    resources: dict[str, Any]
    containers: int
    multi_node: bool
    mounts: list[dict[str, Any]]
    priority: int
    tags: list[str]
    idle_timeout_s: int | None
    max_duration_s: int | None
    max_retries: int


def parse_resources(raw: dict[str, Any]) -> Amounts:
    out: Amounts = {}
    for name, value in raw.items():
        if isinstance(value, float):
            value = repr(value)  # JSON numbers arrive as floats; keep their decimal spelling
        try:
            amount = parse_amount(name, value)
        except (InvalidSlotValue, ValueError) as exc:
            raise InvalidRequest(str(exc), code="invalid_resources") from None
        if amount < 0:
            raise InvalidRequest(f"{name} must not be negative", code="invalid_resources")
        if amount > 0:
            out[name] = amount
    if "cpu" not in out or "mem" not in out:
        raise InvalidRequest("resources must include cpu and mem", code="invalid_resources")
    return out


async def create_session(
    db: AsyncSession, principal: Principal, *, spec: NewSession, now: datetime
) -> SessionRow:
    project = await _resolve_project(db, principal, spec.project_id)
    group = await db.scalar(
        select(ResourceGroupRow).where(ResourceGroupRow.name == spec.resource_group)
    )
    allowed = group is not None and await db.scalar(
        select(ResourceGroupProjectRow.project_id).where(
            ResourceGroupProjectRow.resource_group_id == group.id,
            ResourceGroupProjectRow.project_id == project.id,
        )
    )
    if not allowed:
        raise Forbidden(
            f"project {project.name!r} may not use resource group {spec.resource_group!r}",
            code="resource_group_denied",
        )
    per_container = parse_resources(spec.resources)
    policies = await _policies(db, principal=principal, project=project)
    for scope, policy in policies.items():
        groups = policy.allowed_resource_groups
        if groups is not None and spec.resource_group not in groups:
            raise Forbidden(
                f"{scope} may not use resource group {spec.resource_group!r}",
                code="resource_group_denied",
            )
    await _check_fits_some_node(db, spec=spec, per_container=per_container)
    await images.check_image_allowed(db, image=spec.image, project_id=project.id)
    total = {k: v * spec.containers for k, v in per_container.items()}
    _check_absolute_quota(policies, total)
    await _check_pending_limit(db, policies, principal=principal, project=project)
    max_duration = _cap_lifetime(spec, policies)
    session = SessionRow(
        id=uuid.uuid4(),
        name=spec.name or f"s-{uuid.uuid4().hex[:8]}",
        domain_id=project.domain_id,
        project_id=project.id,
        user_id=principal.user_id,
        resource_group=spec.resource_group,
        type=spec.type,
        image=spec.image,
        architecture=spec.architecture,
        command=spec.command,
        env=spec.env,
        containers_spec=[to_json(per_container) for _ in range(spec.containers)],
        multi_node=spec.multi_node,
        mounts=spec.mounts,
        ports=await images.service_ports_for(db, image=spec.image),
        tags=spec.tags,
        priority=spec.priority,
        idle_timeout_s=spec.idle_timeout_s
        if spec.idle_timeout_s is not None
        else _tightest(p.default_idle_timeout_s for p in policies.values()),
        max_duration_s=max_duration,
        max_retries=spec.max_retries if spec.type is SessionType.BATCH else 0,
        status=SessionStatus.PENDING,
        status_reason=Reason.CREATED,
        status_changed_at=now,
        waiting_since=now,
        created_at=now,
    )
    db.add(session)
    await db.flush()  # the history row references the session; no ORM relationship orders them
    db.add(
        SessionHistoryRow(
            session_id=session.id, status=SessionStatus.PENDING, reason=Reason.CREATED, at=now
        )
    )
    await db.flush()
    return session


def visible_sessions(principal: Principal) -> Select[Any]:
    query = select(SessionRow)
    if principal.is_superadmin:
        return query
    if principal.role is UserRole.DOMAIN_ADMIN:
        return query.where(SessionRow.domain_id == principal.domain_id)
    admin_of = [p for p, r in principal.project_roles.items() if r is ProjectRole.ADMIN]
    return query.where(
        or_(SessionRow.user_id == principal.user_id, SessionRow.project_id.in_(admin_of))
    )


async def get_session(
    db: AsyncSession, principal: Principal, *, session_id: uuid.UUID
) -> SessionRow:
    row = await db.scalar(visible_sessions(principal).where(SessionRow.id == session_id))
    if row is None:
        raise NotFound("session not found")
    return row


async def find_session(db: AsyncSession, principal: Principal, *, ref: str) -> SessionRow:
    """A session by id, or by name among the caller's own sessions (newest first)."""
    try:
        return await get_session(db, principal, session_id=uuid.UUID(ref))
    except ValueError:
        pass
    row = await db.scalar(
        visible_sessions(principal)
        .where(SessionRow.name == ref, SessionRow.user_id == principal.user_id)
        .order_by(SessionRow.created_at.desc())
        .limit(1)
    )
    if row is None:
        raise NotFound(f"no session with id or name {ref!r}")
    return row


async def list_sessions(
    db: AsyncSession,
    principal: Principal,
    *,
    statuses: list[SessionStatus] | None,
    project_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    type_: SessionType | None,
    name: str | None,
    include_terminal: bool,
    cursor: str | None,
    limit: int,
) -> Page[SessionRow]:
    query = visible_sessions(principal)
    if statuses:
        query = query.where(SessionRow.status.in_(statuses))
    elif not include_terminal:
        query = query.where(SessionRow.status.in_(list(ACTIVE)))
    if project_id:
        query = query.where(SessionRow.project_id == project_id)
    if user_id:
        query = query.where(SessionRow.user_id == user_id)
    if type_:
        query = query.where(SessionRow.type == type_)
    if name:
        query = query.where(SessionRow.name.startswith(name, autoescape=True))
    return await paginate(db, query, model=SessionRow, cursor=cursor, limit=limit)


async def containers_of(db: AsyncSession, *, session_id: uuid.UUID) -> list[SessionContainerRow]:
    rows = await db.scalars(
        select(SessionContainerRow)
        .where(SessionContainerRow.session_id == session_id)
        .order_by(SessionContainerRow.attempt.desc(), SessionContainerRow.index)
    )
    return list(rows.all())


async def history(
    db: AsyncSession, principal: Principal, *, session_id: uuid.UUID
) -> list[SessionHistoryRow]:
    await get_session(db, principal, session_id=session_id)
    rows = await db.scalars(
        select(SessionHistoryRow)
        .where(SessionHistoryRow.session_id == session_id)
        .order_by(SessionHistoryRow.id)
    )
    return list(rows.all())


async def terminate_session(
    db: AsyncSession, principal: Principal, *, session_id: uuid.UUID, now: datetime
) -> SessionRow:
    """Cancel a pending session, or ask the terminate loop to stop a placed one. Idempotent."""
    visible = await get_session(db, principal, session_id=session_id)
    row = await db.scalar(select(SessionRow).where(SessionRow.id == visible.id).with_for_update())
    assert row is not None
    if row.user_id != principal.user_id and not principal.is_project_admin_of(
        project_id=row.project_id, domain_id=row.domain_id
    ):
        raise Forbidden("only the owner or a project admin can terminate this session")
    if row.status in TERMINAL or row.status is SessionStatus.TERMINATING:
        return row
    if row.status is SessionStatus.PENDING:
        hand_over(db, row, SessionStatus.CANCELLED, reason=Reason.USER_CANCELLED, now=now)
    else:
        transition(db, row, SessionStatus.TERMINATING, reason=Reason.USER_TERMINATED, now=now)
    return row


# --- validation helpers -----------------------------------------------------------------------


async def _resolve_project(
    db: AsyncSession, principal: Principal, project_id: uuid.UUID | None
) -> ProjectRow:
    if project_id is None:
        if len(principal.project_roles) != 1:
            raise InvalidRequest(
                "you belong to several projects (or none): pass project_id",
                code="project_required",
            )
        project_id = next(iter(principal.project_roles))
    project = await get_project(db, principal, project_id=project_id)
    if not principal.is_member_of(project.id) and not principal.is_domain_admin_of(
        project.domain_id
    ):
        raise Forbidden("you are not a member of this project", code="not_a_member")
    if not project.is_active:
        raise Forbidden("this project is deactivated", code="project_inactive")
    return project


async def _policies(
    db: AsyncSession, *, principal: Principal, project: ProjectRow
) -> dict[str, ResourcePolicyRow]:
    scopes = session_scopes(
        domain_id=project.domain_id, project_id=project.id, user_id=principal.user_id
    )
    rows = await db.scalars(select(ResourcePolicyRow).where(ResourcePolicyRow.scope.in_(scopes)))
    return {row.scope: row for row in rows}


async def _check_fits_some_node(
    db: AsyncSession, *, spec: NewSession, per_container: Amounts
) -> None:
    agents = (
        await db.execute(
            select(AgentRow.id, AgentRow.capacity, AgentRow.images).where(
                AgentRow.resource_group == spec.resource_group
            )
        )
    ).all()
    if not agents:
        raise InvalidRequest(
            f"resource group {spec.resource_group!r} has no nodes; ask an admin to add one",
            code="no_nodes",
        )
    offered = {slot for _, capacity, _ in agents for slot in capacity}
    unknown = sorted(set(per_container) - offered)
    if unknown:
        raise InvalidRequest(
            f"no node in {spec.resource_group!r} offers {', '.join(unknown)}; "
            f"available slots: {', '.join(sorted(offered))}",
            code="unknown_slot",
        )
    need = (
        per_container
        if spec.multi_node
        else {k: v * spec.containers for k, v in per_container.items()}
    )
    if not any(_fits(need, to_amounts(capacity)) for _, capacity, _ in agents):
        largest = max((to_amounts(c) for _, c, _ in agents), key=lambda c: sum(c.values()))
        raise InvalidRequest(
            "the request is larger than any node in the group "
            f"(largest node: {_fmt(largest)}; requested: {_fmt(need)})",
            code="request_too_large",
        )
    images = {img["name"] for _, _, imgs in agents for img in imgs}
    if spec.image not in images:
        raise InvalidRequest(
            f"image {spec.image!r} is not on any node of {spec.resource_group!r}; "
            "build or load it there first (see `berth images`)",
            code="image_not_found",
        )


def _check_absolute_quota(policies: dict[str, ResourcePolicyRow], total: Amounts) -> None:
    """A request that can never fit a limit, even with nothing else running, is refused now;
    one that fits the limit but not the current usage waits in the queue with the reason."""
    for scope, policy in sorted(policies.items()):
        for slot, limit in to_amounts(policy.slots).items():
            asked = total.get(slot, Decimal(0))
            if asked > limit:
                raise InvalidRequest(
                    f"request of {slot}={asked} exceeds the {scope} limit {slot}={limit}",
                    code="quota_exceeded",
                    details={
                        "scope": scope,
                        "slot": slot,
                        "limit": str(limit),
                        "requested": str(asked),
                    },
                )
        if policy.max_concurrent_sessions == 0:
            raise InvalidRequest(f"{scope} may not run sessions", code="quota_exceeded")


async def _check_pending_limit(
    db: AsyncSession,
    policies: dict[str, ResourcePolicyRow],
    *,
    principal: Principal,
    project: ProjectRow,
) -> None:
    for scope, policy in policies.items():
        if policy.max_pending_sessions is None:
            continue
        kind = scope.partition(":")[0]
        cond = {
            "domain": SessionRow.domain_id == project.domain_id,
            "project": SessionRow.project_id == project.id,
            "user": SessionRow.user_id == principal.user_id,
            "user_in_project": and_(
                SessionRow.project_id == project.id, SessionRow.user_id == principal.user_id
            ),
        }[kind]
        pending = await db.scalar(
            select(func.count()).where(cond, SessionRow.status == SessionStatus.PENDING)
        )
        if (pending or 0) >= policy.max_pending_sessions:
            raise RateLimited(
                f"{scope} already has {pending} pending sessions "
                f"(limit {policy.max_pending_sessions}); wait or cancel some",
                code="too_many_pending",
            )


def _cap_lifetime(spec: NewSession, policies: dict[str, ResourcePolicyRow]) -> int | None:
    cap = _tightest(p.max_session_lifetime_s for p in policies.values())
    if cap is None:
        return spec.max_duration_s
    if spec.max_duration_s is None:
        return cap
    return min(spec.max_duration_s, cap)


def _tightest(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _fits(need: Amounts, capacity: Amounts) -> bool:
    return all(capacity.get(k, Decimal(0)) >= v for k, v in need.items())


def _fmt(amounts: Amounts) -> str:
    return ", ".join(f"{k}={v.normalize():f}" for k, v in sorted(amounts.items()))
