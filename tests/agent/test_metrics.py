"""`GET /metrics` of a real agent process (docker runtime, fake GPUs): values follow real
container actions, the endpoint needs no cluster secret, every documented family is exported."""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.agent.conftest import (
    AUTH,
    SECRET,
    container_request,
    docker_host,
    port_range,
    remove_node_containers,
    wait_for,
)
from tests.agent.test_serve import free_port
from tests.prometheus import families, value

REPO = Path(__file__).resolve().parents[2]


def documented(section: str) -> list[str]:
    text = (REPO / "docs" / "operations.md").read_text()
    part = text.split(f"### {section}", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(berth_[a-z_]+)` \|", part, flags=re.M)


@pytest.fixture
async def agent_url(tmp_path: Path) -> AsyncIterator[str]:
    port, node_id = free_port(), f"t-metrics-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "agent.toml"
    config.write_text(
        f'node_id = "{node_id}"\nruntime = "docker"\ndocker_host = "{docker_host()}"\n'
        f'listen_port = {port}\ncluster_secret = "{SECRET}"\n'
        f'scratch_root = "{tmp_path / "scratch"}"\nport_range = "{port_range()}"\n'
        'device_plugins = ["fake"]\ncpu_capacity = 2\nmem_capacity = 4294967296\n'
        'stop_grace_s = 1\n[device_options.fake]\ncount = 2\nkind = "cuda"\n'
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "--config", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                try:
                    async with http.get(f"{url}/healthz", headers=AUTH) as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout_s=30, what="the agent process")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=15)
        await remove_node_containers(node_id)


async def scrape(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as resp:  # no cluster secret
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


async def test_agent_metrics_follow_containers_and_allocations(agent_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        before = await scrape(http, agent_url)
        declared = families(before)
        for name in documented("Agent"):
            assert name.removesuffix("_total") in declared, f"{name} not exported"
        assert value(before, "berth_agent_containers", state="running") == 0
        assert value(before, "berth_agent_slot_capacity", slot="cuda.device") == 2
        assert value(before, "berth_agent_slot_capacity", slot="cpu") == 2
        assert value(before, "berth_agent_slot_allocated", slot="cuda.device") == 0
        assert value(before, "berth_agent_runtime_up") == 1
        assert value(before, "berth_agent_node_memory_total_bytes") > 0
        assert 0 < value(before, "berth_agent_node_memory_used_bytes")

        # The secret still guards everything else, and a refusal is measured too.
        async with http.get(f"{agent_url}/v1/node") as resp:
            assert resp.status == 401
        body = container_request(slots={"cpu": "0.5", "mem": "67108864", "cuda.device": "1"})
        async with http.post(f"{agent_url}/v1/containers", json=body, headers=AUTH) as resp:
            assert resp.status == 201, await resp.text()

        during = await scrape(http, agent_url)
        assert value(during, "berth_agent_containers", state="running") == 1
        assert value(during, "berth_agent_slot_allocated", slot="cuda.device") == 1
        assert value(during, "berth_agent_slot_allocated", slot="cpu") == 0.5
        assert value(during, "berth_agent_slot_allocated", slot="mem") == 64 * 1024**2
        assert 0 <= value(during, "berth_agent_node_cpu_used_ratio") <= 1
        latency = "berth_agent_http_request_duration_seconds_count"
        assert value(during, latency, route="/v1/containers", method="POST", status="201") == 1
        assert value(during, latency, route="/v1/node", status="401") == 1

        cid = body["container_id"]
        async with http.delete(f"{agent_url}/v1/containers/{cid}", headers=AUTH) as resp:
            assert resp.status == 200

        async def released() -> bool:
            text = await scrape(http, agent_url)
            return (
                value(text, "berth_agent_containers", state="running") == 0
                and value(text, "berth_agent_slot_allocated", slot="cuda.device") == 0
            )

        await wait_for(released, what="the destroyed container to leave the metrics")
