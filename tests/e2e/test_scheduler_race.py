"""Two real manager processes schedule the same queue at once; hundreds of racing creates must
never over-commit a device, a node or a quota. Nodes are simulated through the real heartbeat
API (the scheduler never talks to agents), so only the schedule loop runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from agent.contract import DeviceInfo, ImageInfo, NodeReport, RuntimeHealth
from tests.e2e.conftest import CLUSTER_SECRET, create_admin, manager_env
from tests.live import berth_process, free_port

pytestmark = pytest.mark.slow

NODES, GPUS, SESSIONS, PROJECT_GPU_LIMIT = 6, 8, 300, 30


def report(node_id: str) -> dict[str, object]:
    devices = [
        DeviceInfo(
            id=f"{node_id}-gpu{i}",
            plugin="fake",
            slot_name="cuda.device",
            model="FakeGPU",
            numa_node=i // 4,
        )
        for i in range(GPUS)
    ]
    return NodeReport(
        node_id=node_id,
        resource_group="default",
        advertised_url="http://127.0.0.1:9",
        architecture="x86_64",
        runtime="docker",
        capacity={"cpu": Decimal(64), "mem": Decimal(2**36), "cuda.device": Decimal(GPUS)},
        free={},
        devices=devices,
        containers=[],
        images=[ImageInfo(name="berth/busybox:test")],
        runtime_health=RuntimeHealth(status="ok"),
        agent_version="sim",
        reported_at=datetime.now(UTC),
    ).model_dump(mode="json")


async def test_two_managers_racing_never_overcommit(stack_db: str, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    envs = [{**manager_env(stack_db, p), "BERTH_LOOPS": '["schedule"]'} for p in ports]
    token = create_admin(envs[0], username="racer")
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with (
        berth_process(
            ["manager", "serve"],
            env=envs[0],
            log_path=tmp_path / "m0.log",
            ready_url=urls[0] + "/readyz",
        ),
        berth_process(
            ["manager", "serve"],
            env=envs[1],
            log_path=tmp_path / "m1.log",
            ready_url=urls[1] + "/readyz",
        ),
    ):
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            for i in range(NODES):
                resp = await http.post(
                    urls[i % 2] + "/api/v1/internal/agents/heartbeat",
                    json=report(f"sim-{i}"),
                    headers={"X-Berth-Cluster-Secret": CLUSTER_SECRET},
                )
                assert resp.status_code == 200, resp.text
            me = (await http.get(urls[0] + "/api/v1/auth/me")).json()
            project = next(iter(me["project_roles"]))
            resp = await http.put(
                f"{urls[0]}/api/v1/quotas/project/{project}",
                json={"slots": {"cuda.device": PROJECT_GPU_LIMIT}},
            )
            assert resp.status_code == 200

            gate = asyncio.Semaphore(40)

            async def create(i: int) -> None:
                async with gate:
                    resp = await http.post(
                        urls[i % 2] + "/api/v1/sessions",
                        json={
                            "image": "berth/busybox:test",
                            "command": ["true"],
                            "resources": {"cpu": 1, "mem": "1g", "cuda.device": [1, 2, 4][i % 3]},
                        },
                    )
                    assert resp.status_code == 201, resp.text

            await asyncio.gather(*(create(i) for i in range(SESSIONS)))
            # Wait until both schedulers settle: every pending session carries a verdict.
            deadline = asyncio.get_running_loop().time() + 90
            conn = await asyncpg.connect(stack_db)
            try:
                while True:
                    undecided = await conn.fetchval(
                        "SELECT count(*) FROM sessions WHERE status='pending' "
                        "AND pending_verdict IS NULL"
                    )
                    if undecided == 0:
                        break
                    assert asyncio.get_running_loop().time() < deadline, "schedulers never settled"
                    await asyncio.sleep(0.5)
                await _check_invariants(conn, project)
            finally:
                await conn.close()
    logs = (tmp_path / "m0.log").read_text() + (tmp_path / "m1.log").read_text()
    assert "unhandled error" not in logs
    placed = [line for line in logs.splitlines() if "schedule cycle" in line]
    assert placed, "both managers ran scheduling cycles"


async def _check_invariants(conn: asyncpg.Connection, project: str) -> None:
    rows = await conn.fetch(
        "SELECT id, session_id, node_id, slots, devices FROM session_containers "
        "WHERE released_at IS NULL"
    )
    assert rows, "some sessions were placed"
    per_node: dict[str, Decimal] = defaultdict(Decimal)
    devices: Counter[str] = Counter()
    project_gpus = Decimal(0)
    for row in rows:
        slots = json.loads(row["slots"])
        gpus = Decimal(slots.get("cuda.device", "0"))
        per_node[row["node_id"]] += gpus
        project_gpus += gpus
        ids = json.loads(row["devices"]).get("cuda.device", [])
        assert len(ids) == gpus
        devices.update(ids)
    assert max(per_node.values()) <= GPUS
    assert all(n == 1 for n in devices.values()), "a device was handed out twice"
    assert project_gpus <= PROJECT_GPU_LIMIT
    # The ledgers agree with the allocation rows they summarise.
    for node_id, allocated in await conn.fetch("SELECT id, allocated FROM agents"):
        ledger = json.loads(allocated).get("slots", {})
        assert Decimal(ledger.get("cuda.device", "0")) == per_node.get(node_id, Decimal(0))
    usage = await conn.fetchval(
        "SELECT slots FROM quota_usage WHERE scope = $1", f"project:{project}"
    )
    assert Decimal(json.loads(usage).get("cuda.device", "0")) == project_gpus
    # No session holds containers twice.
    per_session = Counter(str(r["session_id"]) for r in rows)
    assert all(n == 1 for n in per_session.values())
    uuid.UUID(project)
