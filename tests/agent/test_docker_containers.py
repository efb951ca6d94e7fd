"""Containers through the agent API on the real Docker engine: devices, limits, mounts, exits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest

from agent import labels as L
from tests.agent.conftest import AUTH, Agents, container_request, docker_host, wait_for

pytestmark = pytest.mark.docker


async def create(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/containers", json=body, headers=AUTH)
    data = await response.json()
    assert response.status == 201, data
    return data


async def output_of(client: Any, container_id: str) -> str:
    response = await client.get(
        f"/v1/containers/{container_id}/logs", params={"follow": "true"}, headers=AUTH
    )
    assert response.status == 200
    return (await response.read()).decode()


async def finished(client: Any, container_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        data = await (await client.get(f"/v1/containers/{container_id}", headers=AUTH)).json()
        return data if data["state"] == "exited" else None

    result: dict[str, Any] = await wait_for(probe, what=f"{container_id} to exit")
    return result


async def inspect(node_id: str, container_id: str) -> dict[str, Any]:
    async with aiodocker.Docker(url=docker_host()) as docker:
        container = docker.containers.container(f"berth.{node_id}.{container_id}")
        info: dict[str, Any] = await container.show()
        return info


class TestFakeDeviceIsolation:
    async def test_container_with_one_of_four_fake_gpus_sees_exactly_that_device(
        self, agent: Any
    ) -> None:
        script = 'echo "CVD=$CUDA_VISIBLE_DEVICES"; cat /etc/berth/devices.json; echo'
        first = await create(
            agent, container_request(command=["sh", "-c", script], slots={"cuda.device": "1"})
        )
        second = await create(
            agent, container_request(command=["sh", "-c", script], slots={"cuda.device": "1"})
        )
        ids = []
        for info in (first, second):
            [(device_id, amount)] = info["devices"]["cuda.device"].items()
            assert amount == "1"
            ids.append(device_id)
            out = await output_of(agent, info["container_id"])
            index = device_id.rsplit("-", 1)[1]
            assert f"CVD={index}\n" in out
            manifest = json.loads(out[out.index("{") :])
            assert [d["id"] for d in manifest["devices"]] == [device_id]
        assert ids[0] != ids[1]

    async def test_explicit_assignment_is_honoured_and_a_busy_device_is_refused(
        self, agent: Any
    ) -> None:
        chosen = await create(agent, container_request(devices={"cuda.device": ["fake-cuda-2"]}))
        assert chosen["devices"] == {"cuda.device": {"fake-cuda-2": "1"}}
        response = await agent.post(
            "/v1/containers",
            json=container_request(devices={"cuda.device": ["fake-cuda-2"]}),
            headers=AUTH,
        )
        assert response.status == 409
        assert (await response.json())["code"] == "device_busy"

    async def test_destroy_frees_the_device_for_the_next_container(self, agent: Any) -> None:
        infos = [
            await create(agent, container_request(slots={"cuda.device": "2"})) for _ in range(2)
        ]
        response = await agent.post(
            "/v1/containers", json=container_request(slots={"cuda.device": "1"}), headers=AUTH
        )
        assert (await response.json())["code"] == "insufficient_capacity"
        freed = set(infos[0]["devices"]["cuda.device"])
        await agent.delete(f"/v1/containers/{infos[0]['container_id']}", headers=AUTH)
        again = await create(agent, container_request(slots={"cuda.device": "2"}))
        assert set(again["devices"]["cuda.device"]) == freed


class TestLimitsAndSecurity:
    async def test_limits_labels_and_lockdown_are_applied(self, agents: Agents) -> None:
        client = await agents.start()
        body = container_request(
            slots={"cpu": "0.5", "mem": str(96 * 1024**2)},
            pids_limit=77,
            shm_bytes=32 * 1024**2,
            user="1000:1000",
            read_only_rootfs=True,
            ports=[{"name": "http", "container_port": 8080}],
            labels={"team": "ml", "ai.berth.session-id": "spoofed"},
        )
        info = await create(client, body)
        node_id = next(iter(agents.node_ids))
        data = await inspect(node_id, info["container_id"])
        host = data["HostConfig"]
        assert host["Memory"] == 96 * 1024**2 and host["MemorySwap"] == 96 * 1024**2
        assert host["PidsLimit"] == 77
        assert host["NanoCpus"] == 500_000_000
        assert host["ShmSize"] == 32 * 1024**2
        assert host["Init"] is True and host["Privileged"] is False
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True
        assert host["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"
        assert data["Config"]["User"] == "1000:1000"
        labels = data["Config"]["Labels"]
        assert labels[L.SESSION_ID] == body["session_id"]
        assert labels["team"] == "ml"
        assert json.loads(labels[L.PORTS])[0]["host_port"] == info["ports"][0]["host_port"]
        assert not any("docker.sock" in bind for bind in host["Binds"] or [])

    async def test_service_port_is_published_on_loopback(self, agent: Any) -> None:
        body = container_request(
            command=["httpd", "-f", "-p", "8080", "-h", "/"],
            ports=[{"name": "web", "container_port": 8080}],
        )
        info = await create(agent, body)
        port = info["ports"][0]
        assert port["host_ip"] == "127.0.0.1"

        async def answered() -> int | None:
            try:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(
                        f"http://127.0.0.1:{port['host_port']}/etc/berth/devices.json"
                    ) as response,
                ):
                    return response.status
            except aiohttp.ClientError:
                return None

        assert await wait_for(answered, what="httpd on the published port") in (200, 403, 404)

    async def test_read_only_mount_cannot_be_written_and_rw_mount_can(
        self, agent: Any, tmp_path: Path
    ) -> None:
        ro_dir, rw_dir = tmp_path / "data" / "ro", tmp_path / "data" / "rw"
        ro_dir.mkdir()
        rw_dir.mkdir()
        (ro_dir / "input.txt").write_text("dataset")
        script = (
            "cat /in/input.txt; echo; "
            "if echo x > /in/new.txt; then echo RO-WRITABLE; else echo RO-REFUSED; fi; "
            "echo result > /out/result.txt"
        )
        info = await create(
            agent,
            container_request(
                command=["sh", "-c", script],
                mounts=[
                    {"host_path": str(ro_dir), "container_path": "/in", "mode": "ro"},
                    {"host_path": str(rw_dir), "container_path": "/out", "mode": "rw"},
                ],
            ),
        )
        out = await output_of(agent, info["container_id"])
        assert "dataset" in out and "RO-REFUSED" in out and "RO-WRITABLE" not in out
        assert not (ro_dir / "new.txt").exists()
        assert (rw_dir / "result.txt").read_text() == "result\n"


class TestExits:
    async def test_exit_code_is_reported(self, agent: Any) -> None:
        info = await create(agent, container_request(command=["sh", "-c", "exit 42"]))
        done = await finished(agent, info["container_id"])
        assert done["exit_code"] == 42 and done["oom_killed"] is False
        assert done["finished_at"] is not None

    async def test_memory_hog_is_oom_killed(self, agent: Any) -> None:
        info = await create(
            agent,
            container_request(command=["tail", "/dev/zero"], slots={"mem": str(32 * 1024**2)}),
        )
        done = await finished(agent, info["container_id"])
        assert done["oom_killed"] is True
        assert done["exit_code"] == 137
