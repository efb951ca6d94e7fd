"""Heartbeat and events against a small recorder standing in for the manager's endpoints."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.app import HEARTBEAT_KEY
from agent.contract import CLUSTER_AUTH_HEADER, ContainerEvent, NodeReport
from tests.agent.conftest import AUTH, SECRET, Agents, container_request, make_config, wait_for

pytestmark = pytest.mark.docker


class Recorder:
    """Records what the agent sends; `fail` makes it answer 503 like a manager in trouble."""

    def __init__(self) -> None:
        self.reports: list[NodeReport] = []
        self.events: list[ContainerEvent] = []
        self.secrets: set[str] = set()
        self.fail = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/internal/agents/heartbeat", self._heartbeat)
        app.router.add_post("/api/v1/internal/agents/{node_id}/events", self._events)
        return app

    async def _heartbeat(self, request: web.Request) -> web.Response:
        self.secrets.add(request.headers.get(CLUSTER_AUTH_HEADER, ""))
        if self.fail:
            return web.json_response({"code": "unavailable"}, status=503)
        self.reports.append(NodeReport.model_validate(await request.json()))
        return web.json_response({})

    async def _events(self, request: web.Request) -> web.Response:
        self.secrets.add(request.headers.get(CLUSTER_AUTH_HEADER, ""))
        if self.fail:
            return web.json_response({"code": "unavailable"}, status=503)
        for item in await request.json():
            event = ContainerEvent.model_validate(item)
            assert event.container_id and request.match_info["node_id"]
            self.events.append(event)
        return web.json_response({})

    def kinds(self, container_id: str) -> list[str]:
        return [e.kind.value for e in self.events if e.container_id == container_id]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def run_recorder(recorder: Recorder, port: int) -> TestServer:
    server = TestServer(recorder.app(), host="127.0.0.1", port=port)
    await server.start_server()
    return server


class TestHeartbeat:
    async def test_reports_and_events_reach_the_manager(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        recorder = Recorder()
        port = free_port()
        server = await run_recorder(recorder, port)
        try:
            config = make_config(
                tmp_path, manager_url=f"http://127.0.0.1:{port}", heartbeat_interval_s=0.2
            )
            client = await agents.start(config)

            async def two_reports() -> bool:
                return len(recorder.reports) >= 2

            await wait_for(two_reports, what="two heartbeats")
            report = recorder.reports[-1]
            assert report.node_id == config.node_id
            assert report.capacity["cuda.device"] == 4
            assert recorder.secrets == {SECRET}

            body = container_request(command=["sh", "-c", "exit 7"])
            response = await client.post("/v1/containers", json=body, headers=AUTH)
            assert response.status == 201
            cid = body["container_id"]

            async def exited() -> bool:
                return "exited" in recorder.kinds(cid)

            await wait_for(exited, what="exited event")
            exit_event = next(e for e in recorder.events if e.kind.value == "exited")
            assert exit_event.exit_code == 7
            assert exit_event.session_id == body["session_id"]
            await client.delete(f"/v1/containers/{cid}", headers=AUTH)

            async def destroyed() -> bool:
                return recorder.kinds(cid) == ["started", "exited", "destroyed"]

            await wait_for(destroyed, what="started, exited, destroyed in order")
        finally:
            await server.close()

    async def test_manager_outage_is_survived_and_queued_events_are_delivered(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        recorder = Recorder()
        recorder.fail = True
        port = free_port()
        server = await run_recorder(recorder, port)
        try:
            config = make_config(
                tmp_path, manager_url=f"http://127.0.0.1:{port}", heartbeat_interval_s=0.1
            )
            client = await agents.start(config)
            heartbeat = client.app[HEARTBEAT_KEY]
            assert heartbeat is not None

            async def failing() -> bool:
                return heartbeat.failures >= 2

            await wait_for(failing, what="the heartbeat to notice the outage")
            body = container_request()
            response = await client.post("/v1/containers", json=body, headers=AUTH)
            assert response.status == 201, "the agent keeps serving while the manager is down"
            recorder.fail = False

            async def delivered() -> bool:
                return "started" in recorder.kinds(body["container_id"]) and bool(recorder.reports)

            await wait_for(delivered, what="queued events after recovery")
            assert any(
                c.container_id == body["container_id"] and c.state.value == "running"
                for c in recorder.reports[-1].containers
            )
        finally:
            await server.close()

    async def test_manager_not_listening_at_all_does_not_stop_the_agent(
        self, agents: Agents, tmp_path: Path
    ) -> None:
        port = free_port()
        config = make_config(
            tmp_path, manager_url=f"http://127.0.0.1:{port}", heartbeat_interval_s=0.1
        )
        client = await agents.start(config)
        heartbeat = client.app[HEARTBEAT_KEY]
        assert heartbeat is not None

        async def failing() -> bool:
            return heartbeat.failures >= 2

        await wait_for(failing, what="connection failures to be counted")
        response = await client.get("/healthz", headers=AUTH)
        assert (await response.json())["status"] == "ok"
        recorder = Recorder()
        server = await run_recorder(recorder, port)
        try:

            async def reported() -> bool:
                return bool(recorder.reports)

            await wait_for(reported, what="the first report once the manager listens")
        finally:
            await server.close()
