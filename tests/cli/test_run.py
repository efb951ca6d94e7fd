"""`berth run` end to end: output, exit codes, queueing with why-pending, interruption."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import threading
import time

import pytest

from tests.cli.conftest import IMAGE, SMALL, Berth

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_run_prints_the_output_and_exits_with_the_jobs_code(berth: Berth) -> None:
    result = berth("run", "--image", IMAGE, *SMALL, "--", "sh", "-c", "echo hi; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["hi"]
    assert "exit code 3" in result.stderr


def test_a_successful_job_exits_zero_and_keeps_its_arguments(berth: Berth) -> None:
    result = berth(
        "run", "--image", IMAGE, *SMALL, "--env", "GREETING=hello there", "--",
        "sh", "-c", 'echo "$GREETING" "$0"', "arg zero",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello there arg zero"


def test_a_job_over_quota_waits_and_why_names_the_quota(berth: Berth) -> None:
    me = json.loads(berth("whoami", "-o", "json").stdout)
    project = next(iter(me["project_roles"]))
    shown = berth("admin", "quotas", "set", "project", project, "--slot", "cuda.device=1")
    assert shown.returncode == 0, shown.stderr
    try:
        holder = berth("run", "--detach", "--image", IMAGE, *SMALL, "--gpus", "1", "--",
                       "sleep", "60")  # fmt: skip
        assert holder.returncode == 0, holder.stderr
        holder_id = holder.stdout.strip()
        _wait_status(berth, holder_id, {"running"})
        waiter = berth.popen(
            "run", "--image", IMAGE, *SMALL, "--gpus", "1", "--name", "quota-waiter",
            "--", "sh", "-c", "echo got-a-gpu",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        verdict: dict[str, object] = {}
        while time.monotonic() < deadline:
            answer = berth("why", "quota-waiter", "-o", "json")
            if answer.returncode == 0:
                verdict = json.loads(answer.stdout)
                if verdict["code"] == "quota_exceeded":
                    break
            time.sleep(0.3)
        assert verdict.get("code") == "quota_exceeded", verdict
        assert "project" in str(verdict["message"])
        table = berth("why", "quota-waiter")
        assert "quota_exceeded" in table.stdout and "project" in table.stdout
        # `berth run` refreshes the reason every 2 s: let it show it before freeing the GPU.
        shown_lines = _stderr_until(waiter, "quota_exceeded", timeout_s=30)
        assert berth("rm", holder_id).returncode == 0
        out, rest = waiter.communicate(timeout=90)
        err = shown_lines + rest
        assert waiter.returncode == 0, err
        assert out.strip() == "got-a-gpu"
        assert "quota_exceeded" in err, "the pending reason was shown while waiting"
    finally:
        berth("admin", "quotas", "rm", "project", project)


def _stderr_until(proc: subprocess.Popen[str], needle: str, *, timeout_s: float) -> str:
    """Read the process's stderr line by line (in a thread, so the deadline holds) until a line
    contains `needle`; returns what was read."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in iter(proc.stderr.readline, ""):
            lines.put(line)
            if needle in line:
                return

    threading.Thread(target=pump, daemon=True).start()
    seen = ""
    deadline = time.monotonic() + timeout_s
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never appeared; stderr so far: {seen}"
        try:
            seen += lines.get(timeout=remaining)
        except queue.Empty:
            continue
    return seen


def test_an_absolute_quota_violation_is_rejected_with_its_code(berth: Berth) -> None:
    me = json.loads(berth("whoami", "-o", "json").stdout)
    project = next(iter(me["project_roles"]))
    assert berth("admin", "quotas", "set", "project", "default", "--slot", "cuda.device=1")\
        .returncode == 0  # fmt: skip
    try:
        shown = json.loads(berth("admin", "quotas", "show", "project", project, "-o", "json")
                           .stdout)  # fmt: skip
        assert shown["slots"] == {"cuda.device": "1"}
        result = berth("run", "--image", IMAGE, *SMALL, "--gpus", "2", "--", "true")
        assert result.returncode == 65, result.stderr
        assert "quota_exceeded" in result.stderr
    finally:
        berth("admin", "quotas", "rm", "project", project)


def test_ctrl_c_cancels_the_job_when_stdin_is_not_a_terminal(berth: Berth) -> None:
    proc = berth.popen("run", "--image", IMAGE, *SMALL, "--name", "interrupt-me", "--",
                       "sh", "-c", "echo started; sleep 60")  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 79, err
    assert "interrupt-me" in err
    final = _wait_status(berth, "interrupt-me", {"terminated", "cancelled"})
    assert final["status_reason"] == "user_terminated"


def test_infrastructure_and_timeouts_have_their_own_codes(berth: Berth) -> None:
    missing = berth("run", "--image", "no/such:image", *SMALL, "--", "true")
    assert missing.returncode == 65, missing.stderr  # refused at once: no node has it
    assert "image_not_found" in missing.stderr
    slow = berth("run", "--image", IMAGE, *SMALL, "--timeout", "2s", "--", "sleep", "60")
    assert slow.returncode == 73, slow.stderr
    assert "batch_timeout" in slow.stderr


def test_detach_prints_the_id_and_logs_and_events_follow_it(berth: Berth) -> None:
    started = berth("run", "-d", "--image", IMAGE, *SMALL, "--", "sh", "-c", "echo one; echo two")
    assert started.returncode == 0, started.stderr
    session_id = started.stdout.strip()
    events = berth("events", session_id, "-o", "json")
    assert events.returncode == 0, events.stderr
    statuses = [json.loads(line)["status"] for line in events.stdout.splitlines()]
    assert statuses[0] == "pending" and statuses[-1] == "terminated"
    logs = berth("logs", "-f", session_id)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["one", "two"]
    got = json.loads(berth("get", session_id, "-o", "json").stdout)
    assert (got["result"], got["exit_code"]) == ("success", 0)


def _wait_status(berth: Berth, ref: str, wanted: set[str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        answer = berth("get", ref, "-o", "json")
        if answer.returncode == 0:
            last = json.loads(answer.stdout)
            if last["status"] in wanted:
                return last
        time.sleep(0.3)
    raise AssertionError(f"{ref} never reached {wanted}; last: {last}")
