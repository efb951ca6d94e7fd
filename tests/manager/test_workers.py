"""Several API worker processes on one port (`workers` > 1): both serve, /metrics merges
them, worker 0 alone runs the loops, the others forward loop wake-ups over the event bus,
and the supervisor stops cleanly or fails as a whole."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cluster.factory import create_event_bus
from manager.config import ManagerConfig
from manager.state import STATE_KEY
from tests.cluster.conftest import redis_url
from tests.factories import World
from tests.live import berth_process, free_port
from tests.prometheus import samples


def test_more_than_one_worker_with_loops_needs_a_shared_event_bus() -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        ManagerConfig(workers=2, redis_url="local://")
    ManagerConfig(workers=2, redis_url="local://", loops=[])  # nothing to wake
    ManagerConfig(workers=2, redis_url="redis://127.0.0.1:6379/0")


async def test_a_manager_without_loops_forwards_wake_ups_over_the_bus(
    aiohttp_client: Any, manager_config: ManagerConfig
) -> None:
    config = manager_config.model_copy(update={"loops": [], "redis_url": redis_url()})
    from manager.app import create_app

    client = await aiohttp_client(create_app(config))
    bus = create_event_bus(redis_url(), prefix="berth")
    name = f"test-{uuid.uuid4().hex[:8]}"
    try:
        async with bus.subscribe("wake") as stream:
            client.server.app[STATE_KEY].wake(name)
            async with asyncio.timeout(10):
                async for message in stream:
                    if message.event.get("loop") == name:
                        break
    finally:
        await bus.close()


def _workers_of(supervisor: int) -> list[int]:
    """Pids of the spawned worker processes (not multiprocessing's resource tracker)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == supervisor and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if os.path.exists(f"/proc/{pid}")]


def _wait(predicate: Any, *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        return r.status, r.read().decode()


@pytest.fixture
def two_workers(manager_config: ManagerConfig, tmp_path: Path) -> Any:
    port = free_port()
    env = {
        "BERTH_DB_URL": manager_config.db_url.get_secret_value(),
        "BERTH_SECRET_KEY": manager_config.secret_key.get_secret_value(),
        "BERTH_CLUSTER_SECRET": manager_config.cluster_secret.get_secret_value(),
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_WORKERS": "2",
        "BERTH_REDIS_URL": redis_url(),
        # A loop that only reads: enough to see that worker 0 runs loops, without scheduling
        # the sessions other tests leave in the shared database.
        "BERTH_LOOPS": '["gauges"]',
        "BERTH_LOG_LEVEL": "INFO",
        "BERTH_LOG_JSON": "false",
    }
    log = tmp_path / "manager.log"
    base = f"http://127.0.0.1:{port}"
    with berth_process(
        ["manager", "serve"], env=env, log_path=log, ready_url=base + "/readyz"
    ) as p:
        yield p, base, log


async def test_two_workers_serve_one_port_and_metrics_cover_both(
    two_workers: Any, world: World
) -> None:
    proc, base, log = two_workers
    workers = _wait(
        lambda: len(_workers_of(proc.pid)) == 2 and _workers_of(proc.pid),
        timeout_s=30,
        what="two workers",
    )
    alice = await world.actor(await world.domain())
    for _ in range(30):  # a new connection each: the kernel spreads them over the workers
        status, _ = await asyncio.to_thread(_get, base + "/api/v1/auth/me", alice.token)
        assert status == 200

    def merged() -> Any:
        text = _get(base + "/metrics")[1]
        counts = samples(text).get("berth_http_request_duration_seconds_count", {})
        served = sum(v for labels, v in counts.items() if ("route", "/api/v1/auth/me") in labels)
        return served == 30 and "berth_sessions" in text and text

    text = await asyncio.to_thread(_wait, merged, timeout_s=30, what="merged metrics")
    assert "berth_sessions{" in text, "gauges set by worker 0's loop"
    # Both workers got to serving (the second may still have been importing when the first
    # answered /readyz).
    await asyncio.to_thread(
        _wait,
        lambda: log.read_text().count("manager starting") == 2,
        timeout_s=30,
        what="both workers' start-up line",
    )
    assert _alive(workers) == workers


def test_sigterm_stops_every_worker(two_workers: Any) -> None:
    proc, _, _ = two_workers
    workers = _wait(lambda: _workers_of(proc.pid), timeout_s=30, what="workers")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    for pid in workers:
        _wait(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), timeout_s=10, what="exit")


def test_a_dead_worker_takes_the_set_down_for_the_service_manager_to_restart(
    two_workers: Any,
) -> None:
    proc, _, log = two_workers
    first, second = _wait(
        lambda: len(_workers_of(proc.pid)) == 2 and _workers_of(proc.pid),
        timeout_s=30,
        what="two workers",
    )
    os.kill(second, signal.SIGKILL)
    try:
        assert proc.wait(timeout=20) == 1
    except subprocess.TimeoutExpired:
        raise AssertionError("the supervisor kept running with a worker gone") from None
    _wait(lambda: not os.path.exists(f"/proc/{first}"), timeout_s=10, what="the other's exit")
    assert "a manager worker exited" in log.read_text()
