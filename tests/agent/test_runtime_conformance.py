"""One conformance suite for every ContainerRuntime: Docker and bare processes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from agent import labels as L
from agent.config import AgentConfig
from agent.contract import ContainerState
from agent.errors import ContainerNotFound
from agent.runtime.base import (
    Closeable,
    ContainerRuntime,
    EventSource,
    RuntimeContainer,
    RuntimeSpec,
)
from agent.runtime.docker import DockerRuntime
from agent.runtime.process import ProcessRuntime
from tests.agent.conftest import IMAGE, make_config, remove_node_containers, wait_for

RUNTIMES: dict[str, Callable[[AgentConfig], ContainerRuntime]] = {
    "docker": DockerRuntime,
    "process": ProcessRuntime,
}

pytestmark = pytest.mark.docker


@pytest.fixture(params=sorted(RUNTIMES))
async def runtime_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ContainerRuntime, AgentConfig]]:
    config = make_config(tmp_path, runtime=request.param)
    runtime = RUNTIMES[request.param](config)
    created: list[ContainerRuntime] = [runtime]
    try:
        yield runtime, config
    finally:
        for container in await runtime.list():
            await runtime.destroy(container.container_id)
        for item in created:
            if isinstance(item, Closeable):
                await item.aclose()
        await remove_node_containers(config.node_id)


def spec(config: AgentConfig, command: list[str], **overrides: object) -> RuntimeSpec:
    container_id = f"r-{uuid.uuid4().hex[:8]}"
    values: dict[str, object] = {
        "container_id": container_id,
        "image": IMAGE,
        "command": command,
        "env": {"BERTH_TEST_VALUE": "hello-from-env"},
        "labels": {
            L.NODE_ID: config.node_id,
            L.CONTAINER_ID: container_id,
            L.SESSION_ID: "sess-1",
        },
    }
    values.update(overrides)
    return RuntimeSpec(**values)  # type: ignore[arg-type]


async def find(runtime: ContainerRuntime, container_id: str) -> RuntimeContainer | None:
    return next((c for c in await runtime.list() if c.container_id == container_id), None)


async def exited(runtime: ContainerRuntime, container_id: str) -> RuntimeContainer:
    async def probe() -> RuntimeContainer | None:
        found = await find(runtime, container_id)
        return found if found and found.state == ContainerState.EXITED else None

    result: RuntimeContainer = await wait_for(probe, what=f"{container_id} to exit")
    return result


async def collect_logs(runtime: ContainerRuntime, container_id: str, *, follow: bool) -> bytes:
    chunks = [chunk async for chunk in runtime.logs(container_id, follow=follow)]
    return b"".join(chunks)


class TestContainerRuntime:
    async def test_created_container_is_listed_running_with_its_labels(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sleep", "30"])
        created = await runtime.create(s)
        assert created.state == ContainerState.RUNNING
        listed = await find(runtime, s.container_id)
        assert listed is not None and listed.state == ContainerState.RUNNING
        assert listed.labels[L.SESSION_ID] == "sess-1"
        assert listed.started_at is not None

    async def test_destroy_removes_and_is_idempotent(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sleep", "30"])
        await runtime.create(s)
        assert await runtime.destroy(s.container_id) is True
        assert await find(runtime, s.container_id) is None
        assert await runtime.destroy(s.container_id) is False

    async def test_exit_code_is_reported(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sh", "-c", "exit 3"])
        await runtime.create(s)
        result = await exited(runtime, s.container_id)
        assert result.exit_code == 3
        assert result.oom_killed is False

    async def test_followed_logs_stream_until_exit_and_carry_env(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sh", "-c", 'echo first; sleep 0.3; echo "$BERTH_TEST_VALUE"'])
        await runtime.create(s)
        output = await collect_logs(runtime, s.container_id, follow=True)
        assert b"first" in output and b"hello-from-env" in output

    async def test_stats_read_cgroup_counters_with_the_memory_limit(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sleep", "30"], memory_bytes=64 * 1024**2, pids_limit=64)
        await runtime.create(s)
        stats = await runtime.stats(s.container_id)
        assert stats.source.startswith("cgroup")
        assert stats.memory_limit_bytes == 64 * 1024**2
        assert stats.pids is not None and stats.pids >= 1
        assert stats.cpu_ns is not None

    async def test_unknown_container_raises_not_found(self, runtime_env):
        runtime, _ = runtime_env
        with pytest.raises(ContainerNotFound):
            await runtime.stats("does-not-exist")
        with pytest.raises(ContainerNotFound):
            await collect_logs(runtime, "does-not-exist", follow=False)

    async def test_a_new_runtime_instance_recovers_the_same_containers(self, runtime_env):
        runtime, config = runtime_env
        s = spec(config, ["sleep", "30"], cpu=Decimal("0.5"))
        await runtime.create(s)
        fresh = RUNTIMES[runtime.name](config)
        try:
            listed = await find(fresh, s.container_id)
            assert listed is not None and listed.state == ContainerState.RUNNING
            assert listed.labels == await _labels(runtime, s.container_id)
            assert await fresh.destroy(s.container_id) is True
        finally:
            if isinstance(fresh, Closeable):
                await fresh.aclose()

    async def test_exit_is_announced_as_an_event(self, runtime_env):
        runtime, config = runtime_env
        assert isinstance(runtime, EventSource)
        events = runtime.events()
        runtime = runtime_env[0]
        first = await anext(events)
        assert first.kind == "resync"
        s = spec(config, ["sh", "-c", "sleep 0.2; exit 5"])
        await runtime.create(s)

        async def next_exit() -> str:
            event = await anext(events)
            return event.container_id if event.kind == "exited" else ""

        assert await wait_for(next_exit, what="exit event") == s.container_id
        await events.aclose()  # type: ignore[attr-defined]


async def _labels(runtime: ContainerRuntime, container_id: str) -> dict[str, str]:
    found = await find(runtime, container_id)
    assert found is not None
    return found.labels
