"""Agent test fixtures: real Docker engine (DOCKER_HOST from scripts/test-services), fake devices.

`agents` starts in-process agent apps behind aiohttp's test client; every agent gets a unique
node id, so cleanup removes exactly the containers its tests created (by the node-id label).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent import labels as L
from agent.app import create_app
from agent.config import AgentConfig
from agent.contract import CLUSTER_AUTH_HEADER
from agent.runtime.process import ProcessRuntime

IMAGE = "berth/busybox:test"
SECRET = "test-cluster-secret"
AUTH = {CLUSTER_AUTH_HEADER: SECRET}
_port_blocks = itertools.count()


def docker_host() -> str:
    value = os.environ.get("DOCKER_HOST")
    if not value:
        raise RuntimeError("DOCKER_HOST is not set: run the suite through ./scripts/test")
    return value


def port_range() -> str:
    """A distinct block per agent so parallel agents never compete for host ports."""
    base = 34000 + 40 * (next(_port_blocks) % 200)
    return f"{base}-{base + 39}"


def make_config(tmp_path: Path, **overrides: Any) -> AgentConfig:
    values: dict[str, Any] = {
        "node_id": f"t-{uuid.uuid4().hex[:10]}",
        "cluster_secret": SECRET,
        "scratch_root": tmp_path / "scratch",
        "docker_host": docker_host(),
        "device_plugins": ["fake"],
        "device_options": {"fake": {"count": 4, "kind": "cuda"}},
        "port_range": port_range(),
        "allowed_mount_roots": [str(tmp_path / "data")],
        "stop_grace_s": 1,
        "cpu_capacity": "2",
        "mem_capacity": 4 * 1024**3,
    }
    values.update(overrides)
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    return AgentConfig(**values)


async def wait_for(
    probe: Callable[[], Awaitable[Any]], *, timeout_s: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await probe()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def container_request(container_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "container_id": container_id or f"c-{uuid.uuid4().hex[:8]}",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "image": IMAGE,
        "command": ["sleep", "30"],
        "slots": {"cpu": "0.5", "mem": str(64 * 1024**2)},
    }
    body.update(overrides)
    return body


async def remove_node_containers(node_id: str) -> None:
    async with aiodocker.Docker(url=docker_host()) as docker:
        filters = json.dumps({"label": [f"{L.NODE_ID}={node_id}"]})
        for container in await docker.containers.list(all=True, filters=filters):
            await container.delete(force=True)


class Agents:
    """Starts agents and tears them (and their containers) down after the test."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clients: list[TestClient[Any, Any]] = []
        self.node_ids: set[str] = set()
        self.process_configs: list[AgentConfig] = []

    async def start(
        self, config: AgentConfig | None = None, **kwargs: Any
    ) -> TestClient[Any, Any]:
        config = config or make_config(self.tmp_path)
        self.node_ids.add(config.node_id)
        if config.runtime == "process":
            self.process_configs.append(config)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, **kwargs)))
        await client.start_server()
        self.clients.append(client)
        return client

    async def stop(self, client: TestClient[Any, Any]) -> None:
        """Stop the agent process-equivalent; its containers keep running."""
        await client.close()
        self.clients.remove(client)

    async def close(self) -> None:
        for client in list(self.clients):
            await client.close()
        for node_id in self.node_ids:
            await remove_node_containers(node_id)
        for config in self.process_configs:
            runtime = ProcessRuntime(config)
            for container in await runtime.list():
                await runtime.destroy(container.container_id)
            await runtime.aclose()


@pytest.fixture
async def agents(tmp_path: Path) -> AsyncIterator[Agents]:
    harness = Agents(tmp_path)
    try:
        yield harness
    finally:
        await harness.close()


@pytest.fixture
async def agent(agents: Agents) -> TestClient[Any, Any]:
    return await agents.start()
