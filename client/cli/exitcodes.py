"""The exit-code contract of `berth` (documented in docs/cli.md). `berth run` passes the job's
own exit code through; everything Berth itself reports lives in 64..79, a range (from
sysexits.h) that programs rarely use for their own failures."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    USAGE = 64  # the command line is wrong (unknown option, bad --resource, bad duration)
    REJECTED = 65  # the manager refused the request (validation, quota, unknown slot or image)
    NOT_FOUND = 66  # the session, node, user or project does not exist
    UNAVAILABLE = 69  # the manager cannot be reached or answers "unavailable"
    INTERNAL = 70  # the manager failed unexpectedly (5xx); quote the request id
    TIMED_OUT = 73  # the job ran past its --timeout or its lifetime limit
    INFRASTRUCTURE = 75  # node lost, image missing on the node, dispatch failed, preparing timeout
    AUTH = 77  # the token is missing its permission, invalid, expired or revoked
    CONFIG = 78  # no token configured, or the config file is unreadable
    INTERRUPTED = 79  # Ctrl-C, or the session was cancelled/terminated before the job exited


# Terminal session reasons that are the infrastructure's fault (manager.lifecycle.session).
INFRASTRUCTURE_REASONS = frozenset(
    {"preparing_timeout", "dispatch_failed", "image_not_found", "node_lost"}
)
TIMEOUT_REASONS = frozenset({"batch_timeout", "max_lifetime"})
STOPPED_REASONS = frozenset({"user_cancelled", "user_terminated", "idle_timeout"})
OOM_EXIT = 137  # what a shell reports for a SIGKILLed process


def for_http_status(status: int) -> ExitCode:
    if status in (401, 403):
        return ExitCode.AUTH
    if status == 404:
        return ExitCode.NOT_FOUND
    if status in (429, 502, 503, 504):
        return ExitCode.UNAVAILABLE
    if status >= 500:
        return ExitCode.INTERNAL
    return ExitCode.REJECTED


def for_session(*, status: str, reason: str, exit_code: int | None) -> int:
    """The exit status of `berth run` for a finished session."""
    if reason == "exit_success":
        return ExitCode.OK
    if reason == "exit_failure":
        return exit_code if exit_code else 1
    if reason == "oom_killed":
        return exit_code if exit_code else OOM_EXIT
    if reason in TIMEOUT_REASONS:
        return ExitCode.TIMED_OUT
    if reason in INFRASTRUCTURE_REASONS or status == "error":
        return ExitCode.INFRASTRUCTURE
    if reason in STOPPED_REASONS or status == "cancelled":
        return ExitCode.INTERRUPTED
    if exit_code is not None:
        return exit_code
    return ExitCode.INTERRUPTED
