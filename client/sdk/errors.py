"""Exceptions raised by the SDK. Callers switch on `BerthAPIError.code`, the manager's stable
error code, never on the message."""

from __future__ import annotations

from typing import Any


class BerthError(Exception):
    """Base of every error the SDK raises."""


class BerthConfigError(BerthError):
    """The client is not configured well enough to make a call (no endpoint, no token)."""


class BerthConnectionError(BerthError):
    """The manager could not be reached (after retries), or a stream broke off."""

    def __init__(self, message: str, *, endpoint: str) -> None:
        super().__init__(message)
        self.endpoint = endpoint


class BerthAPIError(BerthError):
    """The manager answered with an error body `{code, message, request_id}`."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int,
        request_id: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.details = details

    @property
    def is_auth_error(self) -> bool:
        return self.status in (401, 403)

    @classmethod
    def from_response(
        cls, *, status: int, body: Any, text: str, request_id: str | None
    ) -> BerthAPIError:
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return cls(
                body["code"],
                str(body.get("message", "")),
                status,
                body.get("request_id") or request_id,
                body.get("details"),
            )
        # Not our error shape: a proxy in front of the manager, or an old server.
        snippet = " ".join(text.split())[:200] or f"HTTP {status}"
        return cls(f"http_{status}", snippet, status, request_id)
