"""One namespaced cluster (tests/cluster_mode/harness.py) shared by every test of this package.

Tests that break something (kill a process, stop a service) restore it before they end, so the
next test starts from a healthy cluster. Outage length: BERTH_CLUSTER_OUTAGE_S (default 30 s,
the length the cluster issue names): longer than every lease in the cluster (agents 4 s, managers
and the leader key 10 s), so during an etcd outage registrations and leadership really lapse and
must come back. A shorter value (12 s still outlives every lease) makes local runs quicker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.cluster_mode.harness import IMAGE, Cluster

OUTAGE_S = float(os.environ.get("BERTH_CLUSTER_OUTAGE_S", "30"))
LOST_AFTER_S = 6.0

_MISSING = [tool for tool in ("nsenter", "socat", "pg_createcluster", "etcd", "redis-server")
            if shutil.which(tool) is None]  # fmt: skip


@pytest.fixture(scope="package")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("cluster mode needs root: it creates network namespaces and a PG cluster")
    if _MISSING:
        pytest.fail(f"missing tools for the cluster harness: {_MISSING} (see MACHINE.md)")
    if "DOCKER_HOST" not in os.environ:
        pytest.fail("DOCKER_HOST is not set: run through ./scripts/test")
    # Not under pytest's basetemp: concurrent pytest runs prune old basetemps, and the private
    # PostgreSQL (user `postgres`) must be able to enter the directory.
    workdir = Path(tempfile.mkdtemp(prefix="berth-cluster-", dir="/var/tmp"))
    workdir.chmod(0o755)
    harness = Cluster(workdir, lost_after_s=LOST_AFTER_S).start()
    try:
        yield harness
    finally:
        harness.stop()
        if not os.environ.get("BERTH_CLUSTER_KEEP_LOGS"):
            shutil.rmtree(workdir, ignore_errors=True)


def batch(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "type": "batch",
        "command": ["sh", "-c", command],
        "resources": {"cpu": "0.25", "mem": "32m", **extra.pop("resources", {})},
        **extra,
    }


TERMINAL = ("terminated", "error", "cancelled")


async def wait_json(
    api: httpx.AsyncClient,
    path: str,
    predicate: Any,
    *,
    timeout_s: float = 60,
    what: str = "",
    params: dict[str, Any] | None = None,
) -> Any:
    """Poll GET path until predicate(json) holds, with a deadline (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        try:
            resp = await api.get(path, params=params)
            last = resp.json() if resp.headers.get("content-type", "").startswith("appl") else None
            if resp.status_code == 200 and predicate(last):
                return last
        except httpx.HTTPError as exc:  # a manager restarting
            last = repr(exc)
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what or path} never held; last answer: {str(last)[:2000]}")


async def wait_all_terminal(
    api: httpx.AsyncClient, ids: list[str], *, timeout_s: float = 120
) -> dict[str, dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    done: dict[str, dict[str, Any]] = {}
    while loop.time() < deadline and len(done) < len(ids):
        for sid in ids:
            if sid in done:
                continue
            try:
                resp = await api.get(f"/api/v1/sessions/{sid}")
            except httpx.HTTPError:
                continue
            if resp.status_code == 200 and resp.json()["status"] in TERMINAL:
                done[sid] = resp.json()
        if len(done) < len(ids):
            await asyncio.sleep(0.5)
    missing = [sid for sid in ids if sid not in done]
    assert not missing, f"{len(missing)} sessions never finished, e.g. {missing[:3]}"
    return done


async def db_rows(cluster: Cluster, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(**cluster.pg_dsn())
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def wait_until_async(predicate: Any, *, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {timeout_s}s")
