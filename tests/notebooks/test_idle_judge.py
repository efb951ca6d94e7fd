"""The idle judge as a table, and the small pure helpers around the app proxy and culler."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from manager.db.models import SessionRow
from manager.lifecycle.session import SessionStatus, SessionType
from manager.services.app_proxy import app_env, app_token, counts_as_activity
from manager.services.idle import (
    KernelFacts,
    SessionFacts,
    Verdict,
    accelerator_utilisation,
    idle_remaining_s,
    judge,
    parse_kernels,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SID = uuid.UUID("00000000-0000-0000-0000-000000000001")


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def facts(**overrides: object) -> SessionFacts:
    base: dict[str, object] = {
        "session_id": SID,
        "type": SessionType.INTERACTIVE,
        "status": SessionStatus.RUNNING,
        "idle_timeout_s": 600,
        "started_at": ago(3600),
        "last_activity_at": None,
    }
    base.update(overrides)
    return SessionFacts(**base)  # type: ignore[arg-type]


CASES = [
    # (case, facts, verdict, remaining_s)
    ("never used since start long ago", facts(), Verdict.CULL, 0.0),
    ("started recently", facts(started_at=ago(100)), Verdict.KEEP, 500.0),
    ("proxied traffic recently", facts(last_activity_at=ago(60)), Verdict.KEEP, 540.0),
    ("traffic exactly a timeout ago", facts(last_activity_at=ago(600)), Verdict.CULL, 0.0),
    ("traffic long ago", facts(last_activity_at=ago(601)), Verdict.CULL, 0.0),
    (
        "busy kernel, no traffic",
        facts(kernels=KernelFacts(busy=True, last_activity=ago(5000))),
        Verdict.KEEP,
        600.0,
    ),
    (
        "idle kernel active recently",
        facts(kernels=KernelFacts(busy=False, last_activity=ago(30))),
        Verdict.KEEP,
        570.0,
    ),
    (
        "idle kernel, old activity",
        facts(kernels=KernelFacts(busy=False, last_activity=ago(900))),
        Verdict.CULL,
        0.0,
    ),
    ("accelerator busy", facts(accelerator_util_pct=80.0), Verdict.KEEP, 600.0),
    ("accelerator at threshold", facts(accelerator_util_pct=5.0), Verdict.KEEP, 600.0),
    ("accelerator nearly idle", facts(accelerator_util_pct=4.9), Verdict.CULL, 0.0),
    ("batch session", facts(type=SessionType.BATCH), Verdict.EXEMPT, None),
    ("inference session", facts(type=SessionType.INFERENCE), Verdict.EXEMPT, None),
    ("no idle timeout", facts(idle_timeout_s=None), Verdict.EXEMPT, None),
    ("zero idle timeout", facts(idle_timeout_s=0), Verdict.EXEMPT, None),
    ("not running yet", facts(status=SessionStatus.PREPARING), Verdict.EXEMPT, None),
    ("already terminating", facts(status=SessionStatus.TERMINATING), Verdict.EXEMPT, None),
    ("running without start time", facts(started_at=None), Verdict.EXEMPT, None),
]


@pytest.mark.parametrize(
    ("case", "given", "verdict", "remaining"), CASES, ids=[c[0] for c in CASES]
)
def test_judge(case: str, given: SessionFacts, verdict: Verdict, remaining: float | None) -> None:
    decision = judge(NOW, given)
    assert decision.verdict is verdict, decision.reason
    assert decision.remaining_s == remaining


def test_judge_reports_newer_kernel_activity_to_record() -> None:
    kernel_at = ago(30)
    decision = judge(
        NOW,
        facts(last_activity_at=ago(300), kernels=KernelFacts(busy=False, last_activity=kernel_at)),
    )
    assert decision.active_at == kernel_at
    older = judge(
        NOW, facts(last_activity_at=ago(10), kernels=KernelFacts(False, last_activity=ago(30)))
    )
    assert older.active_at is None
    assert judge(NOW, facts(kernels=KernelFacts(True, None))).active_at == NOW


def test_threshold_is_configurable() -> None:
    assert judge(NOW, facts(accelerator_util_pct=20.0), util_threshold_pct=50).verdict is (
        Verdict.CULL
    )


def test_idle_remaining_from_a_session_row() -> None:
    row = SessionRow(
        id=SID,
        type=SessionType.INTERACTIVE,
        status=SessionStatus.RUNNING,
        idle_timeout_s=600,
        started_at=ago(1000),
        last_activity_at=ago(100),
    )
    assert idle_remaining_s(row, NOW) == 500.0
    row.last_activity_at = ago(5000)
    assert idle_remaining_s(row, NOW) == 0.0
    row.type = SessionType.BATCH
    assert idle_remaining_s(row, NOW) is None


def test_parse_kernels() -> None:
    payload = [
        {"id": "a", "execution_state": "idle", "last_activity": "2026-11-28T11:50:00.000001Z"},
        {"id": "b", "execution_state": "busy", "last_activity": "2026-11-28T11:40:00Z"},
        {"id": "c", "execution_state": "starting", "last_activity": "not a date"},
        "junk",
    ]
    kernels = parse_kernels(payload)
    assert kernels.busy
    assert kernels.last_activity == datetime(2026, 11, 28, 11, 50, 0, 1, tzinfo=UTC)
    assert parse_kernels([]) == KernelFacts(busy=False, last_activity=None)
    with pytest.raises(ValueError):
        parse_kernels({"message": "Forbidden"})


def test_accelerator_utilisation_uses_bound_devices_only() -> None:
    reported: list[dict[str, Any]] = [
        {"id": "gpu-0", "utilization_pct": 3.0},
        {"id": "gpu-1", "attributes": {"utilization_pct": "42"}},
        {"id": "gpu-2", "utilization_pct": 99.0},  # someone else's
        {"id": "gpu-3"},
    ]
    bound = [{"cuda.device": ["gpu-0", "gpu-1"]}, {"cuda.shares": ["gpu-3"]}]
    assert accelerator_utilisation(bound, reported) == 42.0
    assert accelerator_utilisation([{"cuda.device": ["gpu-3"]}], reported) is None
    assert accelerator_utilisation([], reported) is None


def test_app_token_is_deterministic_per_secret_and_session() -> None:
    other = uuid.uuid4()
    token = app_token("secret-key-0123456789", SID)
    assert token == app_token("secret-key-0123456789", SID)
    assert len(token) == 64 and int(token, 16) >= 0
    assert token != app_token("secret-key-0123456789", other)
    assert token != app_token("another-secret-key-0000", SID)
    env = app_env("secret-key-0123456789", SID)
    assert env == {
        "BERTH_APP_TOKEN": token,
        "JUPYTER_TOKEN": token,
        "BERTH_APP_PREFIX": f"/apps/{SID}/",
        "BERTH_SESSION_ID": str(SID),
    }


@pytest.mark.parametrize(
    ("method", "tail", "counts"),
    [
        ("GET", "lab", True),
        ("GET", "lab/tree/notebook.ipynb", True),
        ("GET", "api/kernels", False),
        ("GET", "api/contents/", False),
        ("HEAD", "api/status", False),
        ("PUT", "api/contents/notebook.ipynb", True),
        ("POST", "api/kernels", True),
        ("GET", "static/lab/main.js", True),
    ],
)
def test_which_requests_count_as_activity(method: str, tail: str, counts: bool) -> None:
    assert counts_as_activity(method, tail) is counts
