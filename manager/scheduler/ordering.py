"""Queue ordering policies: in which order a resource group's pending sessions are tried.

Each policy is one method, `order(sessions, context=...)`, returning every session exactly once.
Ties always fall back to FIFO (`created_at`, then `session_id`) so the order is deterministic.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from manager.scheduler.slots import EMPTY, SlotMap
from manager.scheduler.snapshot import DrfUsage, OrderingKind, PendingSession


@dataclass(frozen=True, slots=True)
class OrderingContext:
    """What a policy may look at besides the sessions: the group's total capacity (the DRF
    denominator) and the resources users and projects already hold in the group."""

    capacity: SlotMap = EMPTY
    usage: DrfUsage = field(default_factory=DrfUsage)


class OrderingPolicy(Protocol):
    def order(
        self, sessions: Sequence[PendingSession], *, context: OrderingContext
    ) -> list[PendingSession]:
        """Return `sessions` in the order the planner should try them. Pure; never drops or
        duplicates a session."""
        ...


def fifo_key(session: PendingSession) -> tuple[datetime, str]:
    return (session.created_at, session.session_id)


class FifoOrdering:
    """Oldest first."""

    def order(
        self, sessions: Sequence[PendingSession], *, context: OrderingContext
    ) -> list[PendingSession]:
        return sorted(sessions, key=fifo_key)


class PriorityOrdering:
    """Highest `priority` first, FIFO within a priority."""

    def order(
        self, sessions: Sequence[PendingSession], *, context: OrderingContext
    ) -> list[PendingSession]:
        return sorted(sessions, key=lambda s: (-s.priority, s.created_at, s.session_id))


class DrfOrdering:
    """Dominant resource fairness, first between projects, then between users of a project.

    Progressive filling: repeatedly take the project with the lowest dominant share, within it
    the user with the lowest dominant share, and that user's oldest session; then charge the
    session's request to both as if it were placed, so one heavy user cannot take every slot of
    a cycle. Dominant share = max over slots of usage / group capacity. Priority is ignored.
    """

    def order(
        self, sessions: Sequence[PendingSession], *, context: OrderingContext
    ) -> list[PendingSession]:
        capacity = context.capacity
        by_project: dict[str, dict[str, deque[PendingSession]]] = {}
        for session in sorted(sessions, key=fifo_key):
            users = by_project.setdefault(session.project_id, {})
            users.setdefault(session.user_id, deque()).append(session)

        project_use: dict[str, SlotMap] = {
            p: context.usage.projects.get(p, EMPTY) for p in by_project
        }
        user_use: dict[str, SlotMap] = {}
        for users in by_project.values():
            for user in users:
                user_use[user] = context.usage.users.get(user, EMPTY)

        user_heaps: dict[str, list[tuple[Decimal, datetime, str, str]]] = {}
        for project, users in by_project.items():
            heap = [_user_entry(user, queue, user_use, capacity) for user, queue in users.items()]
            heapq.heapify(heap)
            user_heaps[project] = heap
        project_heap = [
            _project_entry(p, user_heaps[p], by_project[p], project_use, capacity)
            for p in by_project
        ]
        heapq.heapify(project_heap)

        ordered: list[PendingSession] = []
        while project_heap:
            _, _, project = heapq.heappop(project_heap)
            heap = user_heaps[project]
            _, _, _, user = heapq.heappop(heap)
            queue = by_project[project][user]
            session = queue.popleft()
            ordered.append(session)
            project_use[project] = project_use[project] + session.requested
            user_use[user] = user_use[user] + session.requested
            if queue:
                heapq.heappush(heap, _user_entry(user, queue, user_use, capacity))
            if heap:
                heapq.heappush(
                    project_heap,
                    _project_entry(project, heap, by_project[project], project_use, capacity),
                )
        return ordered


def _user_entry(
    user: str,
    queue: deque[PendingSession],
    user_use: Mapping[str, SlotMap],
    capacity: SlotMap,
) -> tuple[Decimal, datetime, str, str]:
    head = queue[0]
    return (user_use[user].dominant_share(capacity), head.created_at, head.session_id, user)


def _project_entry(
    project: str,
    user_heap: list[tuple[Decimal, datetime, str, str]],
    users: Mapping[str, deque[PendingSession]],
    project_use: Mapping[str, SlotMap],
    capacity: SlotMap,
) -> tuple[Decimal, tuple[datetime, str], str]:
    # The project's tie-break is the session it would hand out next (its lowest-share user's
    # head), so equal shares fall back to FIFO across projects.
    next_user = user_heap[0][3]
    head = users[next_user][0]
    return (project_use[project].dominant_share(capacity), fifo_key(head), project)


_POLICIES: dict[OrderingKind, OrderingPolicy] = {
    OrderingKind.FIFO: FifoOrdering(),
    OrderingKind.PRIORITY: PriorityOrdering(),
    OrderingKind.DRF: DrfOrdering(),
}


def ordering_for(kind: OrderingKind) -> OrderingPolicy:
    return _POLICIES[kind]
