"""Idle culling of interactive sessions: a pure `judge()` over gathered facts, and the gathering.

A running interactive session is idle when, for its whole idle timeout, nobody used its apps
through the proxy (`last_activity_at`), no Jupyter kernel was busy or active, and no accelerator
it holds was busier than a threshold (where a device plugin reports utilisation). Batch and
inference sessions are never culled for inactivity. Culling only destroys containers: data in
mounted folders stays.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from manager.db.models import SessionRow
from manager.lifecycle.session import SessionStatus, SessionType

log = logging.getLogger("berth.manager.idle")

DEFAULT_UTIL_THRESHOLD_PCT = 5.0
KERNEL_QUERY_TIMEOUT_S = 3.0


class Verdict(enum.StrEnum):
    KEEP = "keep"  # in use, or idle for less than its timeout
    CULL = "cull"  # idle for its whole timeout
    EXEMPT = "exempt"  # never culled for inactivity (batch, no timeout, not running)


@dataclass(frozen=True)
class KernelFacts:
    """What Jupyter's `/api/kernels` said."""

    busy: bool
    last_activity: datetime | None


@dataclass(frozen=True)
class SessionFacts:
    session_id: uuid.UUID
    type: SessionType
    status: SessionStatus
    idle_timeout_s: int | None
    started_at: datetime | None
    last_activity_at: datetime | None
    kernels: KernelFacts | None = None  # None: no Jupyter, or it did not answer
    accelerator_util_pct: float | None = None  # None: nothing reports utilisation


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    idle_for_s: float | None = None
    remaining_s: float | None = None
    # The latest sign of use, when the facts know one newer than `last_activity_at`.
    active_at: datetime | None = None


def judge(
    now: datetime, facts: SessionFacts, *, util_threshold_pct: float = DEFAULT_UTIL_THRESHOLD_PCT
) -> Decision:
    if facts.type is not SessionType.INTERACTIVE:
        return Decision(Verdict.EXEMPT, f"{facts.type.value} sessions are not culled when idle")
    if facts.status is not SessionStatus.RUNNING:
        return Decision(Verdict.EXEMPT, f"session is {facts.status.value}, not running")
    if not facts.idle_timeout_s or facts.idle_timeout_s <= 0:
        return Decision(Verdict.EXEMPT, "no idle timeout")
    timeout = float(facts.idle_timeout_s)
    if facts.kernels is not None and facts.kernels.busy:
        return Decision(
            Verdict.KEEP, "a kernel is busy", idle_for_s=0.0, remaining_s=timeout, active_at=now
        )
    util = facts.accelerator_util_pct
    if util is not None and util >= util_threshold_pct:
        return Decision(
            Verdict.KEEP,
            f"accelerators are {util:.0f}% busy (threshold {util_threshold_pct:.0f}%)",
            idle_for_s=0.0,
            remaining_s=timeout,
            active_at=now,
        )
    kernel_at = facts.kernels.last_activity if facts.kernels is not None else None
    last = _latest([facts.started_at, facts.last_activity_at, kernel_at])
    if last is None:
        return Decision(Verdict.EXEMPT, "session has not started")
    idle_for = max(0.0, (now - last).total_seconds())
    newer = None
    if kernel_at is not None and (
        facts.last_activity_at is None or kernel_at > facts.last_activity_at
    ):
        newer = kernel_at
    if idle_for >= timeout:
        return Decision(
            Verdict.CULL,
            f"idle for {idle_for:.0f}s (idle timeout {facts.idle_timeout_s}s)",
            idle_for_s=idle_for,
            remaining_s=0.0,
        )
    return Decision(
        Verdict.KEEP,
        "in use recently",
        idle_for_s=idle_for,
        remaining_s=timeout - idle_for,
        active_at=newer,
    )


def idle_remaining_s(session_row: SessionRow, now: datetime) -> float | None:
    """Seconds until the idle culler may stop this session, from what the DB knows (proxied
    traffic and the culler's last look at kernels and accelerators); None when it never will."""
    decision = judge(
        now,
        SessionFacts(
            session_id=session_row.id,
            type=session_row.type,
            status=session_row.status,
            idle_timeout_s=session_row.idle_timeout_s,
            started_at=session_row.started_at,
            last_activity_at=session_row.last_activity_at,
        ),
    )
    if decision.verdict is Verdict.EXEMPT:
        return None
    return decision.remaining_s


def _latest(values: Iterable[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# --- gathering ----------------------------------------------------------------------------------


def parse_kernels(payload: Any) -> KernelFacts:
    """Facts from Jupyter's `GET /api/kernels` body (a list of kernel models)."""
    if not isinstance(payload, list):
        raise ValueError("expected a list of kernels")
    busy = False
    latest: datetime | None = None
    for kernel in payload:
        if not isinstance(kernel, Mapping):
            continue
        if kernel.get("execution_state") == "busy":
            busy = True
        raw = kernel.get("last_activity")
        if isinstance(raw, str) and raw:
            try:
                at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                continue
            latest = at if latest is None or at > latest else latest
    return KernelFacts(busy=busy, last_activity=latest)


async def query_kernels(
    client: aiohttp.ClientSession,
    *,
    host: str,
    port: int,
    base_path: str,
    token: str,
    timeout_s: float = KERNEL_QUERY_TIMEOUT_S,
) -> KernelFacts | None:
    """Ask a Jupyter server about its kernels; None when it does not answer sensibly (the caller
    then judges on proxied traffic alone)."""
    host_part = f"[{host}]" if ":" in host else host
    url = f"http://{host_part}:{port}{base_path.rstrip('/')}/api/kernels"
    try:
        async with client.get(
            url,
            headers={"Authorization": f"token {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            if response.status != 200:
                log.info(
                    "jupyter kernels query refused", extra={"url": url, "status": response.status}
                )
                return None
            return parse_kernels(await response.json(content_type=None))
    except (TimeoutError, aiohttp.ClientError, ValueError):
        log.info("jupyter kernels query failed", extra={"url": url}, exc_info=True)
        return None


def accelerator_utilisation(
    container_devices: Iterable[Mapping[str, Iterable[str]]],
    agent_devices: Iterable[Mapping[str, Any]],
) -> float | None:
    """The highest utilisation (percent) among the devices bound to a session's containers, as
    the agents last reported them (`utilization_pct` on a device entry or in its attributes);
    None when no bound device reports it."""
    bound = {
        device_id for mapping in container_devices for ids in mapping.values() for device_id in ids
    }
    best: float | None = None
    for device in agent_devices:
        if device.get("id") not in bound:
            continue
        raw = device.get("utilization_pct")
        if raw is None:
            raw = (device.get("attributes") or {}).get("utilization_pct")
        try:
            value = float(raw) if raw is not None else None
        except (TypeError, ValueError):
            value = None
        if value is not None and (best is None or value > best):
            best = value
    return best
