"""Domain errors with stable string codes. Nothing here knows about HTTP: the API middleware maps
each class to a status code."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a caller may see. `code` is stable: clients switch on it."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class InvalidRequest(DomainError):
    code = "invalid_request"


class Unauthenticated(DomainError):
    code = "unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class RateLimited(DomainError):
    code = "rate_limited"


class Unavailable(DomainError):
    """A dependency (agent, storage proxy, database) cannot serve the request now; retry later."""

    code = "unavailable"
