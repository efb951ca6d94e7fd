"""Recovery: a recreated agent re-adopts its containers with the same devices and ports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from agent import labels as L
from tests.agent.conftest import (
    AUTH,
    IMAGE,
    Agents,
    container_request,
    docker_host,
    make_config,
)

pytestmark = pytest.mark.docker


async def report_of(client: Any) -> dict[str, Any]:
    response = await client.get("/v1/node", headers=AUTH)
    assert response.status == 200
    data: dict[str, Any] = await response.json()
    return data


class TestRecovery:
    async def test_restarted_agent_readopts_devices_and_ports(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        config = make_config(tmp_path)
        first = await agents.start(config)
        bodies = [
            container_request(
                slots={"cuda.device": "2"}, ports=[{"name": "http", "container_port": 8080}]
            ),
            container_request(slots={"cuda.device": "1"}),
        ]
        created = []
        for body in bodies:
            response = await first.post("/v1/containers", json=body, headers=AUTH)
            assert response.status == 201
            created.append(await response.json())
        before = await report_of(first)
        await agents.stop(first)

        second = await agents.start(config)
        after = await report_of(second)
        by_id = {c["container_id"]: c for c in after["containers"]}
        for info in created:
            again = by_id[info["container_id"]]
            assert again["state"] == "running" and again["orphan"] is False
            assert again["devices"] == info["devices"]
            assert again["ports"] == info["ports"]
            assert again["session_id"] == info["session_id"]
        assert after["free"] == before["free"]
        assert after["device_free"] == before["device_free"]

        # The one remaining device and a fresh port are all that can be handed out now.
        response = await second.post(
            "/v1/containers",
            json=container_request(
                slots={"cuda.device": "1"}, ports=[{"name": "http", "container_port": 8080}]
            ),
            headers=AUTH,
        )
        third = await response.json()
        used = {d for info in created for d in info["devices"]["cuda.device"]}
        assert set(third["devices"]["cuda.device"]).isdisjoint(used)
        assert third["ports"][0]["host_port"] != created[0]["ports"][0]["host_port"]
        response = await second.post(
            "/v1/containers", json=container_request(slots={"cuda.device": "1"}), headers=AUTH
        )
        assert (await response.json())["code"] == "insufficient_capacity"

    async def test_container_without_a_session_is_reported_as_orphan_and_deleted_on_request(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        config = make_config(tmp_path)
        async with aiodocker.Docker(url=docker_host()) as docker:
            stray = await docker.containers.run(
                {
                    "Image": IMAGE,
                    "Cmd": ["sleep", "30"],
                    "Labels": {
                        L.NODE_ID: config.node_id,
                        L.CONTAINER_ID: "stray-1",
                        L.DEVICES: json.dumps({"cuda.device": {"fake-cuda-1": "1"}}),
                    },
                },
                name=f"berth.{config.node_id}.stray-1",
            )
            client = await agents.start(config)
            report = await report_of(client)
            [orphan] = report["containers"]
            assert orphan["container_id"] == "stray-1"
            assert orphan["orphan"] is True and orphan["session_id"] is None
            # Its device stays bound while it runs, so nothing else can be given fake-cuda-1.
            assert report["device_free"]["fake-cuda-1"] == "0"

            response = await client.delete("/v1/containers/stray-1", headers=AUTH)
            assert (await response.json())["existed"] is True
            filters = json.dumps({"label": [f"{L.NODE_ID}={config.node_id}"]})
            assert await docker.containers.list(all=True, filters=filters) == []
            assert (await report_of(client))["device_free"]["fake-cuda-1"] == "1"
            assert stray.id

    async def test_containers_of_other_nodes_are_ignored(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        mine = await agents.start(make_config(tmp_path / "a"))
        other_config = make_config(tmp_path / "b")
        other = await agents.start(other_config)
        response = await other.post("/v1/containers", json=container_request(), headers=AUTH)
        assert response.status == 201
        assert (await report_of(mine))["containers"] == []
