"""Cursor pagination over (created_at, id): stable under inserts, no OFFSET scans."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from manager.errors import InvalidRequest

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest("cursor is not valid; pass next_cursor from a previous page") from exc


async def paginate(
    db: AsyncSession, query: Select[Any], *, model: Any, cursor: str | None, limit: int
) -> Page[Any]:
    """Rows of `query` (selecting `model`) after `cursor`, oldest first, at most `limit`."""
    created_col, id_col = model.created_at, model.id
    if cursor:
        created, row_id = decode_cursor(cursor)
        try:
            id_value: Any = uuid.UUID(row_id)
        except ValueError:
            id_value = row_id
        query = query.where(
            or_(created_col > created, and_(created_col == created, id_col > id_value))
        )
    rows = list((await db.scalars(query.order_by(created_col, id_col).limit(limit + 1))).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return Page(items=rows, next_cursor=next_cursor)
