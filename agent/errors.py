"""Agent domain errors: stable string codes, no HTTP types (the API layer maps them)."""

from __future__ import annotations

from agent.contract import ErrorCode


class AgentDomainError(Exception):
    """Base of every error the agent reports to a caller; `code` is part of the wire contract."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(AgentDomainError):
    code = ErrorCode.BAD_REQUEST


class DeviceUnknown(AgentDomainError):
    code = ErrorCode.DEVICE_UNKNOWN


class DeviceBusy(AgentDomainError):
    code = ErrorCode.DEVICE_BUSY


class InsufficientCapacity(AgentDomainError):
    code = ErrorCode.INSUFFICIENT_CAPACITY


class SlotUnknown(AgentDomainError):
    code = ErrorCode.SLOT_UNKNOWN


class BadMount(AgentDomainError):
    code = ErrorCode.BAD_MOUNT


class ImageNotFound(AgentDomainError):
    code = ErrorCode.IMAGE_NOT_FOUND


class RuntimeUnavailable(AgentDomainError):
    code = ErrorCode.RUNTIME_UNAVAILABLE


class ContainerNotFound(AgentDomainError):
    code = ErrorCode.CONTAINER_NOT_FOUND


class ContainerExists(AgentDomainError):
    code = ErrorCode.CONTAINER_EXISTS


class PortsExhausted(AgentDomainError):
    code = ErrorCode.PORTS_EXHAUSTED


class RuntimeFailure(AgentDomainError):
    """The runtime refused a well-formed request for a reason we cannot classify further."""

    code = ErrorCode.RUNTIME_ERROR
