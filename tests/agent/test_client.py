"""manager.clients.agent.AgentClient against a real in-process agent (Docker engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.contract import CreateContainerRequest
from manager.clients.agent import AgentClient, AgentError
from tests.agent.conftest import SECRET, Agents, container_request, make_config

pytestmark = pytest.mark.docker


async def client_for(agents: Agents, tmp_path: Path, http: aiohttp.ClientSession) -> AgentClient:
    test_client: Any = await agents.start(make_config(tmp_path))
    base = str(test_client.make_url("/")).rstrip("/")
    return AgentClient(base_url=base, secret=SECRET, http=http)


class TestAgentClient:
    async def test_full_container_round_trip(self, agents: Agents, tmp_path: Path) -> None:
        async with aiohttp.ClientSession() as http:
            client = await client_for(agents, tmp_path, http)
            request = CreateContainerRequest.model_validate(
                container_request(
                    command=["sh", "-c", "echo one; sleep 0.2; echo two"],
                    slots={"cuda.device": "1", "mem": str(32 * 1024**2)},
                )
            )
            info = await client.create_container(request)
            assert info.devices["cuda.device"]
            chunks = [chunk async for chunk in client.logs(info.container_id, follow=True)]
            assert b"one\ntwo\n" in b"".join(chunks)
            assert (await client.get_container(info.container_id)).session_id == request.session_id
            assert [c.container_id for c in await client.list_containers()] == [info.container_id]
            stats = await client.stats(info.container_id)
            assert stats.container_id == info.container_id
            report = await client.node_report()
            assert report.capacity["cuda.device"] == 4
            assert await client.destroy_container(info.container_id) is True
            assert await client.destroy_container(info.container_id) is False

    async def test_agent_errors_are_typed(self, agents: Agents, tmp_path: Path) -> None:
        async with aiohttp.ClientSession() as http:
            client = await client_for(agents, tmp_path, http)
            request = CreateContainerRequest.model_validate(
                container_request(devices={"cuda.device": ["nope"]})
            )
            with pytest.raises(AgentError) as caught:
                await client.create_container(request)
            assert caught.value.code == "device_unknown"
            assert caught.value.status == 400 and caught.value.transient is False
            wrong = AgentClient(base_url=client._base, secret="wrong", http=http)
            with pytest.raises(AgentError) as caught:
                await wrong.node_report()
            assert caught.value.code == "unauthorized"

    async def test_unreachable_agent_is_transient(self) -> None:
        async with aiohttp.ClientSession() as http:
            client = AgentClient(base_url="http://127.0.0.1:9", secret=SECRET, http=http)
            with pytest.raises(AgentError) as caught:
                await client.node_report()
            assert caught.value.transient is True and caught.value.status is None
