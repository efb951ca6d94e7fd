"""Small helpers shared by the service modules."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from manager.errors import Conflict, Forbidden, InvalidRequest


def require(condition: bool, message: str) -> None:
    """Raise Forbidden unless the caller's role allows the action (visibility is checked first)."""
    if not condition:
        raise Forbidden(message)


async def insert_row(db: AsyncSession, row: Any, *, conflict: str) -> Any:
    db.add(row)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return row


async def apply_changes(
    db: AsyncSession, row: Any, changes: dict[str, Any], *, conflict: str
) -> Any:
    for key, value in changes.items():
        if not hasattr(row, key):
            raise InvalidRequest(f"unknown field {key!r}")
        setattr(row, key, value)
    try:
        async with db.begin_nested():
            await db.flush()
    except IntegrityError as exc:
        raise Conflict(conflict) from exc
    return row
