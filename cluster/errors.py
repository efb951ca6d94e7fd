"""Errors raised by the coordination layer, each with a stable string code.

They carry no HTTP knowledge: a service that surfaces one to a user maps the code itself.
"""

from __future__ import annotations


class ClusterError(Exception):
    """Base of every error in `cluster`. `code` is stable: callers may switch on it."""

    code = "cluster.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidURLError(ClusterError, ValueError):
    """A bus or config-store URL has an unknown scheme or a malformed part."""

    code = "cluster.invalid_url"


class InvalidEventError(ClusterError, ValueError):
    """An event is not a JSON object of JSON-serialisable values."""

    code = "cluster.invalid_event"


class InvalidNameError(ClusterError, ValueError):
    """A stream, group, consumer or key name is empty, too long or contains whitespace."""

    code = "cluster.invalid_name"


class BusClosedError(ClusterError):
    """The event bus was closed; no more publishing or consuming."""

    code = "cluster.bus_closed"


class NotAckableError(ClusterError, ValueError):
    """A broadcast message was acked; only messages from a consumer group are acked."""

    code = "cluster.not_ackable"


class LeaseExpiredError(ClusterError):
    """The lease is unknown to the store: it expired or was revoked."""

    code = "cluster.lease_expired"


class ConfigStoreError(ClusterError):
    """The config store cannot serve the request (unreachable, corrupt file, bad key)."""

    code = "cluster.config_store"
