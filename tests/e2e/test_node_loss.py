"""A node that stops reporting is marked lost within the configured time; its sessions are
freed exactly once (a batch session with retries left is queued again, others end in error);
when the agent comes back it re-adopts its containers and the manager destroys the orphans."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from tests.e2e.conftest import (
    Stack,
    create_admin,
    manager_env,
    wait_for,
    write_agent_config,
)
from tests.e2e.test_sessions import batch, finished
from tests.live import berth_process, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def lossy(stack_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    workdir = tmp_path_factory.mktemp("lossy")
    port = free_port()
    env = manager_env(stack_db, port)  # agent_lost_after_s = 6
    token = create_admin(env)
    url = f"http://127.0.0.1:{port}"
    config = write_agent_config(
        workdir / "agent.toml",
        node_id=f"lossy-{uuid.uuid4().hex[:6]}",
        manager_url=url,
        port=free_port(),
        gpus=2,
        scratch=workdir / "scratch",
    )
    with berth_process(
        ["manager", "serve"], env=env, log_path=workdir / "manager.log", ready_url=url + "/readyz"
    ):
        yield Stack(url=url, token=token, db_url=stack_db, env=env, workdir=workdir), config


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", "agent", "serve", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_lost_node_requeues_batch_retries_and_ends_the_rest(
    lossy: tuple[Stack, Path],
) -> None:
    stack, config = lossy
    agent = _start_agent(config, stack.workdir / "agent.log")
    try:
        async with stack.client() as api:
            await wait_for(
                api, "/api/v1/agents", lambda p: any(a["status"] == "alive" for a in p["items"])
            )
            retried = (
                await api.post(
                    "/api/v1/sessions",
                    json=batch(
                        "sleep 600",
                        resources={"cuda.device": 1},
                        max_retries=1,
                    ),
                )
            ).json()
            doomed = (
                await api.post(
                    "/api/v1/sessions",
                    json=batch(
                        "sleep 600",
                        type="interactive",
                        resources={"cuda.device": 1},
                    ),
                )
            ).json()
            for sid in (retried["id"], doomed["id"]):
                await wait_for(api, f"/api/v1/sessions/{sid}", lambda s: s["status"] == "running")

            agent.send_signal(signal.SIGKILL)
            agent.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await wait_for(
                api, "/api/v1/agents", lambda p: p["items"][0]["status"] == "lost", timeout_s=40
            )
            detected_s = loop.time() - killed_at
            assert detected_s < 30, f"lost after {detected_s:.1f}s"
            # Sessions are released one transaction each right after the node is marked lost,
            # so the node's ledger empties a moment after the status flips.
            await wait_for(
                api,
                "/api/v1/agents",
                lambda p: p["items"][0]["allocated"] == {},
                timeout_s=10,
            )
            back = await wait_for(
                api, f"/api/v1/sessions/{retried['id']}", lambda s: s["status"] == "pending"
            )
            assert back["attempt"] == 1 and back["status_reason"] == "retry"
            dead = await wait_for(
                api, f"/api/v1/sessions/{doomed['id']}", lambda s: s["status"] == "error"
            )
            assert dead["status_reason"] == "node_lost"

            # The node returns: it re-adopts both containers, the manager destroys them as
            # orphans, and the retried session runs again (attempt 2) on the same node.
            agent = _start_agent(config, stack.workdir / "agent.log")
            await wait_for(
                api,
                f"/api/v1/sessions/{retried['id']}",
                lambda s: s["status"] == "running" and s["attempt"] == 2,
                timeout_s=60,
            )
            await api.delete(f"/api/v1/sessions/{retried['id']}")
        await finished(stack, retried["id"])
        conn = await asyncpg.connect(stack.db_url)
        try:
            await _wait_for_no_orphans(conn, config)
            rows = await conn.fetch(
                "SELECT session_id, attempt, released_at FROM session_containers "
                "WHERE session_id = ANY($1::uuid[])",
                [uuid.UUID(retried["id"]), uuid.UUID(doomed["id"])],
            )
            assert len(rows) == 3  # two attempts of one session, one of the other
            assert all(r["released_at"] is not None for r in rows), "each freed exactly once"
            usage = await conn.fetch("SELECT slots FROM quota_usage")
            assert all(json.loads(u["slots"]).get("cuda.device") in (None, "0") for u in usage)
        finally:
            await conn.close()
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=20)


async def _wait_for_no_orphans(conn: asyncpg.Connection, config: Path) -> None:
    """The reaper destroys the containers whose allocations were released while the node was
    lost; the node's next reports list none of them."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        reported = await conn.fetchval("SELECT reported_containers FROM agents")
        live = {
            r["id"]
            for r in await conn.fetch(
                "SELECT id FROM session_containers WHERE released_at IS NULL"
            )
        }
        orphans = [c for c in json.loads(reported) if c["container_id"] not in live]
        if not orphans:
            return
        assert asyncio.get_running_loop().time() < deadline, f"orphans left: {orphans}"
        await asyncio.sleep(0.5)
