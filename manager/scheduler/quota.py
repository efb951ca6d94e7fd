"""Quota admission for one cycle.

Quotas nest (domain ⊇ project ⊇ user, plus a user's limit inside one project); a session is
admitted only when every scope it belongs to stays within its limit, so the effective limit of
each slot is the tightest of the four. The tracker starts from the snapshot's usage and adds each
assignment the planner makes, so two sessions of one project in the same cycle cannot both take
the project's last GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from manager.scheduler.slots import ZERO, SlotMap, format_amount
from manager.scheduler.snapshot import PendingSession, QuotaLimit, Scope, ScopeUsage

# The pseudo-slot under which a `max_sessions` violation is reported.
SESSIONS_SLOT = "sessions"


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One limit a session would break: ``used + requested > limit``."""

    scope: Scope
    slot: str
    limit: Decimal
    used: Decimal
    requested: Decimal

    @property
    def excess(self) -> Decimal:
        return self.used + self.requested - self.limit

    @property
    def headroom(self) -> Decimal:
        return max(self.limit - self.used, ZERO)

    def describe(self) -> str:
        def fmt(value: Decimal) -> str:
            return format_amount(self.slot, value)

        return (
            f"scope={self.scope.kind.value} ({self.scope.id}) limit {self.slot}={fmt(self.limit)}"
            f" used={fmt(self.used)} requested={fmt(self.requested)}"
            f" (over by {fmt(self.excess)})"
        )


class QuotaTracker:
    """Current usage per scope, updated as the cycle assigns sessions."""

    def __init__(
        self, *, limits: Mapping[Scope, QuotaLimit], usage: Mapping[Scope, ScopeUsage]
    ) -> None:
        self._limits = limits
        self._slots: dict[Scope, SlotMap] = {scope: u.slots for scope, u in usage.items()}
        self._sessions: dict[Scope, int] = {scope: u.sessions for scope, u in usage.items()}

    def violations(self, session: PendingSession) -> list[QuotaViolation]:
        """Every limit `session` would exceed, tightest (least headroom) first."""
        found: list[QuotaViolation] = []
        requested = session.requested
        for scope in session.scopes():
            limit = self._limits.get(scope)
            if limit is None:
                continue
            used = self._slots.get(scope)
            for slot, cap in limit.slots.items():
                asked = requested.get(slot, ZERO)
                if not asked:
                    continue
                held = used.get(slot, ZERO) if used is not None else ZERO
                if held + asked > cap:
                    found.append(QuotaViolation(scope, slot, cap, held, asked))
            if limit.max_sessions is not None:
                running = self._sessions.get(scope, 0)
                if running + 1 > limit.max_sessions:
                    found.append(
                        QuotaViolation(
                            scope,
                            SESSIONS_SLOT,
                            Decimal(limit.max_sessions),
                            Decimal(running),
                            Decimal(1),
                        )
                    )
        # Tightest first: the least headroom relative to the limit, whatever the slot's unit.
        found.sort(key=lambda v: (v.headroom / v.limit if v.limit > 0 else ZERO, -v.excess))
        return found

    def charge(self, session: PendingSession) -> None:
        for scope in session.scopes():
            if scope not in self._limits:
                # Usage of an unlimited scope never decides admission; skip the bookkeeping.
                continue
            self._slots[scope] = self._slots.get(scope, SlotMap()) + session.requested
            self._sessions[scope] = self._sessions.get(scope, 0) + 1
