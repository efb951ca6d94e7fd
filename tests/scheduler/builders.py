"""Terse builders for scheduler tests: nodes, sessions and snapshots with sensible defaults."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from manager.scheduler import (
    DeviceState,
    DrfUsage,
    ExpectedRelease,
    Node,
    PendingSession,
    QuotaLimit,
    ResourceGroup,
    Scope,
    ScopeUsage,
    SlotMap,
    Snapshot,
)
from manager.scheduler.slots import AmountLike

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def S(values: Mapping[str, AmountLike] | None = None, /, **named: AmountLike) -> SlotMap:
    """SlotMap from a dict (for dotted names) and/or keywords: S({"cuda.device": 2}, cpu=4)."""
    merged: dict[str, AmountLike] = dict(values or {})
    merged.update(named)
    return SlotMap.parse(merged)


def gpu_node(
    node_id: str,
    *,
    group: str = "default",
    gpus: int = 8,
    busy: Iterable[int] = (),
    numa: Sequence[int] | None = None,
    cpu: AmountLike = 64,
    mem: AmountLike = "512g",
    free_cpu: AmountLike | None = None,
    free_mem: AmountLike | None = None,
    architecture: str = "x86_64",
    images: Iterable[str] = ("img",),
    schedulable: bool = True,
    releases: Sequence[ExpectedRelease] = (),
    kind: str = "cuda",
    shares: Mapping[int, AmountLike] | None = None,
) -> Node:
    """A node with `gpus` devices named <node>-g<i>; `busy` lists held device indexes.

    `shares` maps a device index to its free cuda.shares (capacity 1 each) and turns on sharing
    for every device of the node.
    """
    busy_set = set(busy)
    devices = []
    for i in range(gpus):
        capacity = S({f"{kind}.shares": 1}) if shares is not None else SlotMap()
        free = capacity
        whole_free = i not in busy_set
        if shares is not None and i in shares:
            free = S({f"{kind}.shares": shares[i]})
            whole_free = free == capacity
        elif i in busy_set:
            free = SlotMap()
        devices.append(
            DeviceState(
                device_id=f"{node_id}-g{i}",
                slot=f"{kind}.device",
                whole_free=whole_free,
                numa_node=(numa[i] if numa is not None else i * 2 // max(gpus, 1)),
                capacity=capacity,
                free=free,
            )
        )
    total = S({"cpu": cpu, "mem": mem, f"{kind}.device": gpus})
    if shares is not None:
        total = total + S({f"{kind}.shares": gpus})
    return Node(
        node_id=node_id,
        resource_group=group,
        architecture=architecture,
        total=total,
        free=S(
            cpu=free_cpu if free_cpu is not None else cpu,
            mem=free_mem if free_mem is not None else mem,
        ),
        devices=tuple(devices),
        images=frozenset(images),
        schedulable=schedulable,
        releases=tuple(releases),
    )


def cpu_node(node_id: str, **kwargs: object) -> Node:
    return gpu_node(node_id, gpus=0, **kwargs)  # type: ignore[arg-type]


def session(
    session_id: str,
    *containers: SlotMap,
    waited_s: float = 60.0,
    group: str = "default",
    domain: str = "d1",
    project: str = "p1",
    user: str = "u1",
    priority: int = 0,
    multi_node: bool = False,
    image: str = "img",
    architecture: str = "x86_64",
) -> PendingSession:
    """A pending session created `waited_s` seconds before NOW (default: one 1-cpu container)."""
    return PendingSession(
        session_id=session_id,
        created_at=NOW - timedelta(seconds=waited_s),
        resource_group=group,
        domain_id=domain,
        project_id=project,
        user_id=user,
        containers=tuple(containers) if containers else (S(cpu=1, mem="1g"),),
        image=image,
        architecture=architecture,
        priority=priority,
        multi_node=multi_node,
    )


def snapshot(
    pending: Sequence[PendingSession],
    nodes: Sequence[Node],
    *,
    groups: Sequence[ResourceGroup] | None = None,
    quotas: Mapping[Scope, QuotaLimit] | None = None,
    usage: Mapping[Scope, ScopeUsage] | None = None,
    drf: Mapping[str, DrfUsage] | None = None,
) -> Snapshot:
    group_list = groups if groups is not None else [ResourceGroup("default")]
    return Snapshot(
        pending=tuple(pending),
        nodes=tuple(nodes),
        resource_groups={g.name: g for g in group_list},
        quotas=dict(quotas or {}),
        usage=dict(usage or {}),
        drf_usage=dict(drf or {}),
    )


def gpus(n: int, *, cpu: int = 4, mem: str = "16g") -> SlotMap:
    return S({"cuda.device": n, "cpu": cpu, "mem": mem})
