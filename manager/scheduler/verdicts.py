"""Verdicts: why a pending session was not placed, as a stable code plus a message for people."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from manager.scheduler.backfill import Reservation
from manager.scheduler.placement import CandidateIndex
from manager.scheduler.quota import QuotaViolation
from manager.scheduler.slots import EMPTY, ZERO, SlotKind, SlotMap, slot_kind
from manager.scheduler.snapshot import PendingSession


class VerdictCode(enum.StrEnum):
    """Why a pending session was not placed. Stable strings: stored and shown to users."""

    INVALID_REQUEST = "invalid_request"
    RESOURCE_GROUP_DENIED = "resource_group_denied"
    NO_COMPATIBLE_NODE = "no_compatible_node"
    REQUEST_TOO_LARGE = "request_too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    NO_NODE_FITS = "no_node_fits"
    BLOCKED_BY_RESERVATION = "blocked_by_reservation"
    WAITING_FOR_RESERVATION = "waiting_for_reservation"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a session is still pending.

    `queue_position` is 1-based among the sessions of its resource group left pending by this
    cycle, in policy order (None when the group is unknown or forbidden). The optional fields
    carry the numbers behind the message: `quota` for ``quota_exceeded`` (tightest first),
    `requested`/`largest_free` for ``no_node_fits`` and ``request_too_large`` (largest free
    amount on one node; for share slots on one device), `reserved_for` for
    ``blocked_by_reservation``, `reservation` for ``waiting_for_reservation``.
    """

    session_id: str
    code: VerdictCode
    message: str
    queue_position: int | None = None
    quota: tuple[QuotaViolation, ...] = ()
    requested: SlotMap = EMPTY
    largest_free: SlotMap = EMPTY
    reserved_for: tuple[str, ...] = ()
    reservation: Reservation | None = None


def no_fit_message(
    session: PendingSession, index: CandidateIndex, needs: SlotMap, largest: SlotMap
) -> str:
    layout = "on any node" if session.multi_node else "on one node"
    parts = [
        f"no node in resource group {session.resource_group!r} has "
        f"{needs.format()} free {layout}; largest free on one node: "
        f"{largest.format() or 'nothing'}"
    ]
    fragmented = [
        f"{slot}: {index.total_free(slot)} free across the group"
        for slot, amount in needs.items()
        if slot_kind(slot) is not SlotKind.NODE
        and largest.get(slot, ZERO) < amount <= index.total_free(slot)
    ]
    if fragmented:
        parts.append("fragmented (" + ", ".join(fragmented) + ")")
    return "; ".join(parts)


def reservation_message(reservation: Reservation, threshold: float) -> str:
    nodes = ", ".join(
        f"{n.node_id}"
        + (
            " ["
            + " ".join(f"{s}={','.join(ids)}" for s, ids in sorted(n.device_ids.items()))
            + "]"
            if n.device_ids
            else ""
        )
        for n in reservation.nodes
    )
    expected = reservation.expected_at
    when = (
        f"expected free at {expected.isoformat()}"
        if expected is not None
        else "free when running sessions without a known end finish"
    )
    return (
        f"waited {reservation.waited_s:.0f}s (threshold {threshold:g}s); holds a reservation on "
        f"{nodes}, {when}; smaller sessions may not use the reserved resources"
    )
