"""An agent on the process runtime: device visibility, manifest, recovery after a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.agent.conftest import AUTH, Agents, container_request, make_config, wait_for


async def read_output(client: Any, container_id: str) -> str:
    response = await client.get(
        f"/v1/containers/{container_id}/logs", params={"follow": "true"}, headers=AUTH
    )
    return (await response.read()).decode()


class TestProcessAgent:
    async def test_process_sees_only_its_fake_gpu(self, agents: Agents, tmp_path: Path) -> None:
        client = await agents.start(make_config(tmp_path, runtime="process"))
        script = 'echo "CVD=$CUDA_VISIBLE_DEVICES"; cat "$BERTH_DEVICES_MANIFEST"'
        body = container_request(command=["sh", "-c", script], slots={"cuda.device": "1"})
        response = await client.post("/v1/containers", json=body, headers=AUTH)
        info = await response.json()
        assert response.status == 201, info
        [device_id] = info["devices"]["cuda.device"]
        out = await read_output(client, body["container_id"])
        assert f"CVD={device_id.rsplit('-', 1)[1]}\n" in out
        manifest = json.loads(out[out.index("{") :])
        assert [d["id"] for d in manifest["devices"]] == [device_id]

    async def test_restarted_agent_readopts_running_processes(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        config = make_config(tmp_path, runtime="process")
        first = await agents.start(config)
        body = container_request(command=["sleep", "30"], slots={"cuda.device": "2"})
        created = await (await first.post("/v1/containers", json=body, headers=AUTH)).json()
        await agents.stop(first)

        second = await agents.start(config)
        info = await (
            await second.get(f"/v1/containers/{body['container_id']}", headers=AUTH)
        ).json()
        assert info["state"] == "running"
        assert info["devices"] == created["devices"]
        response = await second.delete(f"/v1/containers/{body['container_id']}", headers=AUTH)
        assert (await response.json())["existed"] is True

        async def gone() -> bool:
            listed = await (await second.get("/v1/containers", headers=AUTH)).json()
            return listed["containers"] == []

        await wait_for(gone, what="the process container to be removed")

    async def test_process_runtime_needs_a_command(self, agents: Agents, tmp_path: Path) -> None:
        client = await agents.start(make_config(tmp_path, runtime="process"))
        response = await client.post(
            "/v1/containers", json=container_request(command=None), headers=AUTH
        )
        assert response.status == 400
        assert (await response.json())["code"] == "bad_request"
        report = await (await client.get("/v1/node", headers=AUTH)).json()
        assert report["free"] == report["capacity"]
