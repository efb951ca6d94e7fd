"""Sessions through the SDK: create, list, read, why pending, history, status events, logs,
terminate, and waiting for the end."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from client.sdk.errors import BerthConnectionError
from client.sdk.http import parse_sse
from manager.api.schemas.sessions import (
    HistoryList,
    HistoryOut,
    SessionCreate,
    SessionOut,
    VerdictOut,
)
from manager.lifecycle.session import TERMINAL, SessionStatus

if TYPE_CHECKING:
    from client.sdk.client import AsyncBerth

TERMINAL_STATUSES = frozenset(s.value for s in TERMINAL)


@dataclass(frozen=True)
class StatusEvent:
    """One recorded status change of a session (an SSE `status` event)."""

    status: SessionStatus
    reason: str
    message: str
    at: datetime
    id: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class Sessions:
    def __init__(self, api: AsyncBerth) -> None:
        self._api = api

    async def create(self, spec: SessionCreate | Mapping[str, Any]) -> SessionOut:
        """Queue a session. A mapping is validated against SessionCreate first, so a typo fails
        here instead of on the server."""
        model = spec if isinstance(spec, SessionCreate) else SessionCreate.model_validate(spec)
        body = model.model_dump(mode="json", exclude_unset=True)
        return SessionOut.model_validate(await self._api.post("/api/v1/sessions", body))

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        project_id: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        include_terminal: bool = False,
        page_size: int = 100,
    ) -> AsyncIterator[SessionOut]:
        """Every matching session, newest first, fetching pages as the caller iterates."""
        params = {
            "status": status,
            "project_id": project_id,
            "user_id": user_id,
            "name": name,
            "all": include_terminal or None,
        }
        return self._api.paginate("/api/v1/sessions", SessionOut, params, page_size=page_size)

    async def get(self, ref: str) -> SessionOut:
        """A session by id or name, with its containers."""
        return SessionOut.model_validate(await self._api.get(_path(ref)))

    async def why(self, ref: str) -> VerdictOut:
        return VerdictOut.model_validate(await self._api.get(_path(ref, "why")))

    async def history(self, ref: str) -> builtins.list[HistoryOut]:
        return HistoryList.model_validate(await self._api.get(_path(ref, "history"))).items

    async def terminate(self, ref: str) -> SessionOut:
        """Cancel a pending session or terminate a running one."""
        return SessionOut.model_validate(await self._api.delete(_path(ref)))

    async def events(self, ref: str) -> AsyncIterator[StatusEvent]:
        """Status changes from the start of the session's history; ends after a terminal one."""
        async with self._api.transport.stream("GET", _path(ref, "events")) as response:
            async for item in parse_sse(response.aiter_lines()):
                if item.event != "status":
                    continue
                data = item.json()
                yield StatusEvent(
                    status=SessionStatus(data["status"]),
                    reason=data.get("reason", ""),
                    message=data.get("message", ""),
                    at=datetime.fromisoformat(data["at"]),
                    id=item.id,
                )

    async def logs(
        self, ref: str, *, follow: bool = False, container: int = 0
    ) -> AsyncIterator[str]:
        """The container's output as text chunks; with follow, until the container stops. Once
        the container is gone the manager serves the stored tail."""
        params = {"follow": follow, "container": container}
        async with self._api.transport.stream("GET", _path(ref, "logs"), params=params) as resp:
            async for chunk in resp.aiter_text():
                yield chunk

    async def wait(self, ref: str, *, poll_s: float = 1.0) -> SessionOut:
        """Block until the session is terminal; the final session. Listens to the event stream
        and falls back to polling when the stream breaks."""
        while True:
            try:
                async for event in self.events(ref):
                    if event.terminal:
                        return await self.get(ref)
            except BerthConnectionError:
                pass
            current = await self.get(ref)
            if current.status.value in TERMINAL_STATUSES:
                return current
            await asyncio.sleep(poll_s)


def _path(ref: str, tail: str | None = None) -> str:
    from urllib.parse import quote

    base = f"/api/v1/sessions/{quote(str(ref), safe='')}"
    return f"{base}/{tail}" if tail else base
