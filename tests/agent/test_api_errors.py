"""Bad input through the agent API: stable error codes, never a 500, nothing half-created."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from agent import labels as L
from agent.contract import CLUSTER_AUTH_HEADER
from tests.agent.conftest import AUTH, Agents, container_request, docker_host, make_config

pytestmark = pytest.mark.docker


async def post(client: Any, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/v1/containers", json=body, headers=AUTH)
    return response.status, await response.json()


async def assert_nothing_half_created(client: Any, config_tmp: Path, node_id: str) -> None:
    report = await (await client.get("/v1/node", headers=AUTH)).json()
    assert report["containers"] == []
    assert report["free"] == report["capacity"]
    async with aiodocker.Docker(url=docker_host()) as docker:
        filters = json.dumps({"label": [f"{L.NODE_ID}={node_id}"]})
        assert await docker.containers.list(all=True, filters=filters) == []
    scratch = config_tmp / "scratch" / "containers"
    assert not scratch.exists() or list(scratch.iterdir()) == []


@pytest.fixture
async def node(agents: Agents, tmp_path: Path) -> tuple[Any, str]:
    config = make_config(tmp_path)
    return await agents.start(config), config.node_id


class TestAuth:
    @pytest.mark.parametrize("headers", [{}, {CLUSTER_AUTH_HEADER: "wrong"}])
    @pytest.mark.parametrize("path", ["/healthz", "/v1/node", "/v1/containers"])
    async def test_every_route_requires_the_cluster_secret(self, agent, headers, path):
        response = await agent.get(path, headers=headers)
        body = await response.json()
        assert response.status == 401
        assert body["code"] == "unauthorized" and body["request_id"]

    async def test_the_request_id_is_echoed(self, agent):
        response = await agent.get("/healthz", headers={**AUTH, "X-Request-Id": "abc123"})
        assert response.status == 200
        assert response.headers["X-Request-Id"] == "abc123"


class TestBadCreateRequests:
    @pytest.mark.parametrize(
        ("overrides", "status", "code"),
        [
            ({"devices": {"cuda.device": ["fake-cuda-99"]}}, 400, "device_unknown"),
            ({"slots": {"cuda.device": "5"}}, 409, "insufficient_capacity"),
            ({"slots": {"cpu": "64"}}, 409, "insufficient_capacity"),
            ({"slots": {"rocm.device": "1"}}, 400, "slot_unknown"),
            ({"slots": {"cuda.device": "0.5"}}, 400, "bad_request"),
            ({"slots": {"cpu": "-1"}}, 400, "bad_request"),
            ({"image": "berth/does-not-exist:1"}, 404, "image_not_found"),
            ({"container_id": "../etc"}, 400, "bad_request"),
            ({"user": "root"}, 400, "bad_request"),
            ({"mounts": [{"host_path": "data", "container_path": "/d"}]}, 400, "bad_mount"),
            ({"mounts": [{"host_path": "/etc", "container_path": "/d"}]}, 400, "bad_mount"),
        ],
    )
    async def test_is_refused_with_a_stable_code_and_leaves_nothing(
        self, node, tmp_path, overrides, status, code
    ):
        client, node_id = node
        got_status, body = await post(client, container_request(**overrides))
        assert (got_status, body["code"]) == (status, code), body
        assert body["message"] and body["request_id"]
        await assert_nothing_half_created(client, tmp_path, node_id)

    async def test_mount_escaping_the_root_through_dotdot_or_symlink_is_refused(
        self, node, tmp_path
    ):
        client, node_id = node
        data = tmp_path / "data"
        (data / "link").symlink_to("/etc")
        for host_path in [f"{data}/../scratch", f"{data}/link"]:
            mounts = [{"host_path": host_path, "container_path": "/d"}]
            status, body = await post(client, container_request(mounts=mounts))
            assert (status, body["code"]) == (400, "bad_mount"), host_path
        await assert_nothing_half_created(client, tmp_path, node_id)

    async def test_a_socket_is_never_mounted_even_inside_an_allowed_root(self, node, tmp_path):
        client, node_id = node
        path = tmp_path / "data" / "docker.sock"
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
            mounts = [{"host_path": str(path), "container_path": "/var/run/docker.sock"}]
            status, body = await post(client, container_request(mounts=mounts))
        assert (status, body["code"]) == (400, "bad_mount")
        assert "socket" in body["message"]
        await assert_nothing_half_created(client, tmp_path, node_id)

    async def test_malformed_json_is_a_bad_request(self, agent):
        response = await agent.post(
            "/v1/containers",
            data=b"{not json",
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status == 400
        assert (await response.json())["code"] == "bad_request"

    async def test_duplicate_container_id_is_a_conflict(self, node):
        client, _ = node
        body = container_request()
        assert (await post(client, body))[0] == 201
        status, error = await post(client, body)
        assert (status, error["code"]) == (409, "container_exists")

    async def test_ports_beyond_the_range_are_refused_and_released(self, agents, tmp_path):
        config = make_config(tmp_path, port_range="39990-39991")
        client = await agents.start(config)
        ports = [{"name": f"p{i}", "container_port": 8000 + i} for i in range(3)]
        status, body = await post(client, container_request(ports=ports))
        assert (status, body["code"]) == (409, "ports_exhausted")
        await assert_nothing_half_created(client, tmp_path, config.node_id)
        status, _ = await post(client, container_request(ports=ports[:2]))
        assert status == 201


class TestEngineDown:
    async def test_docker_engine_down_is_a_503_and_reports_degraded(self, agents, tmp_path):
        config = make_config(tmp_path, docker_host=f"unix://{tmp_path}/no-docker.sock")
        client = await agents.start(config)
        status, body = await post(client, container_request(slots={"cuda.device": "1"}))
        assert (status, body["code"]) == (503, "runtime_unavailable")
        report = await (await client.get("/v1/node", headers=AUTH)).json()
        assert report["runtime_health"]["status"] == "degraded"
        assert report["free"] == report["capacity"]
        health = await (await client.get("/healthz", headers=AUTH)).json()
        assert health["status"] == "degraded"


class TestLookups:
    async def test_unknown_container_is_404_and_delete_is_idempotent(self, agent):
        for path in [
            "/v1/containers/nope",
            "/v1/containers/nope/stats",
            "/v1/containers/nope/logs",
        ]:
            response = await agent.get(path, headers=AUTH)
            assert response.status == 404, path
            assert (await response.json())["code"] == "container_not_found"
        response = await agent.delete("/v1/containers/nope", headers=AUTH)
        assert response.status == 200
        assert await response.json() == {"container_id": "nope", "existed": False}

    async def test_unknown_route_is_a_json_404(self, agent):
        response = await agent.get("/v1/nothing-here", headers=AUTH)
        assert response.status == 404
        assert (await response.json())["code"] == "not_found"
