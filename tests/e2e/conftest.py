"""A real Berth stack for end-to-end tests: a fresh database, a manager process with its loops,
and one agent process with fake GPUs on the real Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from manager.db import migrate
from tests.conftest import create_database, drop_database
from tests.live import berth_process, free_port

CLUSTER_SECRET = "e2e-cluster-secret"


@dataclass
class Stack:
    url: str
    token: str
    db_url: str
    env: dict[str, str]
    workdir: Path
    agents: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )


def create_admin(env: dict[str, str], *, username: str | None = None) -> str:
    """`berth manager create-admin` against the stack's database; returns the admin's token."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "client.cli.main", "manager", "create-admin"),
            *("--username", username or f"admin-{uuid.uuid4().hex[:6]}"),
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def manager_env(db_url: str, port: int) -> dict[str, str]:
    return {
        "BERTH_DB_URL": db_url,
        "BERTH_SECRET_KEY": "e2e-secret-key-0123456789",
        "BERTH_CLUSTER_SECRET": CLUSTER_SECRET,
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "BERTH_LOG_JSON": "false",
        "BERTH_AGENT_LOST_AFTER_S": "6",
    }


def write_agent_config(
    path: Path, *, node_id: str, manager_url: str, port: int, gpus: int, scratch: Path
) -> Path:
    low = 20000 + (port % 1000) * 20
    path.write_text(
        "\n".join(
            [
                f'node_id = "{node_id}"',
                'runtime = "docker"',
                'device_plugins = ["fake"]',
                f"listen_port = {port}",
                f'advertised_url = "http://127.0.0.1:{port}"',
                f'manager_url = "{manager_url}"',
                f'cluster_secret = "{CLUSTER_SECRET}"',
                f'scratch_root = "{scratch}"',
                f'allowed_mount_roots = ["{scratch}"]',
                f'port_range = "{low}-{low + 19}"',
                "heartbeat_interval_s = 1",
                "cpu_capacity = 4",
                "mem_capacity = 8589934592",
                "[device_options.fake]",
                f"count = {gpus}",
            ]
        )
        + "\n"
    )
    return path


@pytest.fixture(scope="module")
async def stack_db(pg_admin_url: str) -> AsyncIterator[str]:
    name = f"berth_e2e_{uuid.uuid4().hex[:8]}"
    url = await create_database(pg_admin_url, name)
    await migrate.upgrade(url)
    yield url
    await drop_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def stack(stack_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    port = free_port()
    env = manager_env(stack_db, port)
    token = create_admin(env)
    url = f"http://127.0.0.1:{port}"
    with berth_process(
        ["manager", "serve"], env=env, log_path=workdir / "manager.log", ready_url=url + "/readyz"
    ):
        stack = Stack(url=url, token=token, db_url=stack_db, env=env, workdir=workdir)
        node_id = f"node-{uuid.uuid4().hex[:6]}"
        agent_port = free_port()
        config = write_agent_config(
            workdir / f"{node_id}.toml",
            node_id=node_id,
            manager_url=url,
            port=agent_port,
            gpus=4,
            scratch=workdir / "scratch",
        )
        with berth_process(
            ["agent", "serve", "-c", str(config)],
            env={},
            log_path=workdir / f"{node_id}.log",
            ready_url=f"http://127.0.0.1:{agent_port}/healthz",
            ready_headers={"X-Berth-Cluster-Secret": CLUSTER_SECRET},
        ) as agent:
            stack.agents[node_id] = agent
            yield stack


def dump_logs(stack: Stack) -> str:
    return "\n".join(
        f"--- {p.name} ---\n{p.read_text()[-4000:]}" for p in sorted(stack.workdir.glob("*.log"))
    )


async def wait_for(
    client: httpx.AsyncClient, path: str, predicate: Any, *, timeout_s: float = 60
) -> Any:
    """Poll GET path until predicate(json) holds, with a deadline (no fixed sleeps)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        resp = await client.get(path)
        last = resp.json()
        if resp.status_code == 200 and predicate(last):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never satisfied the condition; last answer: {last}")
