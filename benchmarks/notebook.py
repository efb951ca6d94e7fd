"""Notebook start latency: container create → JupyterLab answering through the app proxy.

What is measured (per session): the real agent's API creates a berth/jupyterlab:4 container with
the session's app env (token, prefix) and its published `jupyter` port; the manager's app proxy
is polled (`GET /apps/<id>/jupyter/api/status`, owner's Bearer token) until JupyterLab answers
200. The session and container rows are written straight to the database in between, as the
dispatch loop would. Sequential sessions first, then a burst started all at once.

Baseline in the same run: the same request against the container's port directly (no proxy),
N times each, interleaved, on one warm notebook: the proxy's own cost per request.

Run: eval "$(./scripts/test-services)"; ./scripts/build-images jupyterlab;
     .venv/bin/python benchmarks/notebook.py [--sessions 20] [--burst 20]
Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from aiohttp import web
from pydantic import SecretStr

from agent.app import create_app as create_agent_app
from agent.config import AgentConfig
from agent.contract import CLUSTER_AUTH_HEADER
from manager.api.apps import APP_PROXY_KEY, APP_ROUTES, install_app_proxy
from manager.api.framework import make_handler
from manager.app import create_app as create_manager_app
from manager.auth.principal import Principal
from manager.config import ManagerConfig
from manager.db import migrate
from manager.db.engine import DbFactory
from manager.db.models import (
    DomainRow,
    MembershipRow,
    ProjectRole,
    ProjectRow,
    SessionContainerRow,
    SessionRow,
    UserRole,
    UserRow,
)
from manager.lifecycle.session import SessionStatus, SessionType
from manager.services import auth as auth_service
from manager.services.app_proxy import app_env
from manager.services.images import service_ports_for
from manager.state import STATE_KEY

IMAGE = "berth/jupyterlab:4"
SECRET = "bench-cluster-secret"
SECRET_KEY = "bench-secret-key-0123456789"
LABELS = {"ai.berth.service-ports": "jupyter:http:8888", "ai.berth.default-app": "jupyter"}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values_ms), 1),
        "p95": round(percentile(values_ms, 95), 1),
        "max": round(max(values_ms), 1),
    }


class Bench:
    def __init__(self, *, db_url: str, scratch: Path) -> None:
        self.config = ManagerConfig(
            db_url=SecretStr(db_url),
            secret_key=SecretStr(SECRET_KEY),
            cluster_secret=SecretStr(SECRET),
            loops=[],
            log_level="WARNING",
            log_json=False,
        )
        self.agent_config = AgentConfig(
            node_id=f"bench-{uuid.uuid4().hex[:6]}",
            cluster_secret=SECRET,
            scratch_root=scratch,
            docker_host=os.environ.get("DOCKER_HOST"),
            device_plugins=[],
            port_range="38200-38399",
            cpu_capacity=Decimal(64),
            reserved_cpu=Decimal(0),
            stop_grace_s=0,
        )
        self.runners: list[web.AppRunner] = []
        self.created: list[str] = []

    async def start(self) -> None:
        manager = create_manager_app(self.config)
        _add_app_routes(manager)
        self.manager_url = await self._serve(manager)
        self.agent_url = await self._serve(create_agent_app(self.agent_config))
        state = manager[STATE_KEY]
        self.db_factory: DbFactory = state.db_factory
        self.domain, self.project, self.user, self.token = await _tenant(state.db_factory, state)
        self.http = aiohttp.ClientSession()

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop_containers(self) -> None:
        for container_id in self.created:
            async with self.http.delete(
                f"{self.agent_url}/v1/containers/{container_id}",
                headers={CLUSTER_AUTH_HEADER: SECRET},
            ) as response:
                await response.read()
        self.created = []

    async def stop(self) -> None:
        await self.stop_containers()
        await self.http.close()
        for runner in reversed(self.runners):
            await runner.cleanup()

    async def one_session(self, *, poll_s: float) -> float:
        """Seconds from the create call to JupyterLab answering through the proxy."""
        session_id = uuid.uuid4()
        container_id = f"bench-{session_id.hex[:12]}"
        started = time.perf_counter()
        async with self.db_factory() as db:
            ports = await service_ports_for(db, image=IMAGE) or [
                {"name": "jupyter", "protocol": "tcp", "container_port": 8888}
            ]
        body = {
            "container_id": container_id,
            "session_id": str(session_id),
            "image": IMAGE,
            "env": app_env(SECRET_KEY, session_id),
            "slots": {"cpu": "1", "mem": str(768 * 1024**2)},
            "ports": ports,
        }
        async with self.http.post(
            f"{self.agent_url}/v1/containers", json=body, headers={CLUSTER_AUTH_HEADER: SECRET}
        ) as response:
            info = await response.json()
        if response.status != 201:
            raise RuntimeError(f"agent create failed: {info}")
        self.created.append(container_id)
        await self._rows(session_id, container_id, info["ports"])
        url = f"{self.manager_url}/apps/{session_id}/jupyter/api/status"
        headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            async with self.http.get(url, headers=headers) as response:
                await response.read()
                if response.status == 200:
                    return time.perf_counter() - started
                if response.status != 503:
                    raise RuntimeError(f"proxy answered {response.status} for {url}")
            await asyncio.sleep(poll_s)
        raise TimeoutError(f"JupyterLab of {session_id} did not answer within 300 s")

    async def _rows(
        self, session_id: uuid.UUID, container_id: str, ports: list[dict[str, Any]]
    ) -> None:
        now = datetime.now(UTC)
        async with self.db_factory() as db, db.begin():
            db.add(
                SessionRow(
                    id=session_id,
                    name=f"nb-{session_id.hex[:6]}",
                    domain_id=self.domain,
                    project_id=self.project,
                    user_id=self.user,
                    resource_group="default",
                    type=SessionType.INTERACTIVE,
                    image=IMAGE,
                    architecture="x86_64",
                    env={},
                    containers_spec=[{"cpu": "1", "mem": str(768 * 1024**2)}],
                    ports=[
                        {k: p[k] for k in ("name", "protocol", "container_port")} for p in ports
                    ],
                    status=SessionStatus.RUNNING,
                    status_reason="started",
                    status_changed_at=now,
                    waiting_since=now,
                    started_at=now,
                    created_at=now,
                )
            )
            await db.flush()
            db.add(
                SessionContainerRow(
                    id=container_id,
                    session_id=session_id,
                    attempt=0,
                    index=0,
                    node_id=self.agent_config.node_id,
                    domain_id=self.domain,
                    project_id=self.project,
                    user_id=self.user,
                    resource_group="default",
                    slots={"cpu": "1", "mem": str(768 * 1024**2)},
                    state="running",
                    ports=ports,
                    allocated_at=now,
                    started_at=now,
                )
            )

    async def proxy_overhead(self, requests: int) -> dict[str, Any]:
        """One warm notebook: the same request through the proxy and directly, interleaved."""
        session_id = uuid.uuid4()
        container_id = f"bench-{session_id.hex[:12]}"
        body = {
            "container_id": container_id,
            "session_id": str(session_id),
            "image": IMAGE,
            "env": app_env(SECRET_KEY, session_id),
            "slots": {"cpu": "1", "mem": str(768 * 1024**2)},
            "ports": [{"name": "jupyter", "protocol": "tcp", "container_port": 8888}],
        }
        async with self.http.post(
            f"{self.agent_url}/v1/containers", json=body, headers={CLUSTER_AUTH_HEADER: SECRET}
        ) as response:
            info = await response.json()
        self.created.append(container_id)
        await self._rows(session_id, container_id, info["ports"])
        published = info["ports"][0]
        path = f"/apps/{session_id}/jupyter/api/status"
        via_proxy = (f"{self.manager_url}{path}", {"Authorization": f"Bearer {self.token}"})
        token = app_env(SECRET_KEY, session_id)["BERTH_APP_TOKEN"]
        direct = (
            f"http://127.0.0.1:{published['host_port']}{path}",
            {"Authorization": f"token {token}"},
        )
        deadline = time.monotonic() + 300
        while True:
            async with self.http.get(via_proxy[0], headers=via_proxy[1]) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("warm notebook did not start")
            await asyncio.sleep(0.1)
        timings: dict[str, list[float]] = {"proxy": [], "direct": []}
        for _ in range(requests):
            for name, (url, headers) in (("direct", direct), ("proxy", via_proxy)):
                started = time.perf_counter()
                async with self.http.get(url, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                timings[name].append((time.perf_counter() - started) * 1000)
        return {
            "requests": requests,
            "direct_ms": summary(timings["direct"]),
            "proxy_ms": summary(timings["proxy"]),
            "added_p50_ms": round(
                statistics.median(timings["proxy"]) - statistics.median(timings["direct"]), 2
            ),
            "activity_writes": self.runners[0].app[APP_PROXY_KEY].activity.writes,
        }


def _add_app_routes(app: web.Application) -> None:
    """Until the composition root wires the app proxy itself."""
    paths = {r.canonical for r in app.router.resources()}
    state = app[STATE_KEY]
    if APP_ROUTES[0].path not in paths:
        for route in APP_ROUTES:
            handler = make_handler(route, db_factory=state.db_factory, clock=state.clock)
            handler.berth_route = route  # type: ignore[attr-defined]
            app.router.add_route(route.method, route.path, handler)
    if APP_PROXY_KEY not in app:
        install_app_proxy(app)


async def _tenant(
    db_factory: DbFactory, state: Any
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]:
    async with db_factory() as db, db.begin():
        domain = DomainRow(name=f"bench-{uuid.uuid4().hex[:6]}", description="")
        db.add(domain)
        await db.flush()
        project = ProjectRow(domain_id=domain.id, name="bench", description="")
        user = UserRow(domain_id=domain.id, username="bench", full_name="", role=UserRole.USER)
        db.add_all([project, user])
        await db.flush()
        db.add(MembershipRow(project_id=project.id, user_id=user.id, role=ProjectRole.MEMBER))
        issued = await auth_service.create_token(
            db,
            Principal(user_id=user.id, domain_id=domain.id, role=UserRole.USER),
            sealer=state.sealer,
            user_id=None,
            name="bench",
            expires_at=None,
            now=datetime.now(UTC),
        )
    return domain.id, project.id, user.id, issued.token


async def run(*, sessions: int, burst: int, requests: int) -> dict[str, Any]:
    admin = os.environ["BERTH_TEST_PG_ADMIN_DSN"]
    name = f"berth_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    db_url = admin.rsplit("/", 1)[0] + f"/{name}"
    await migrate.upgrade(db_url)
    bench = Bench(db_url=db_url, scratch=Path(tempfile.mkdtemp(prefix="berth-nb-bench-")))
    await bench.start()
    try:
        sequential = [await bench.one_session(poll_s=0.05) * 1000 for _ in range(sessions)]
        await bench.stop_containers()
        started = time.perf_counter()
        # Twenty pollers at 20 Hz would cost the 2 CPUs the notebooks start on; 2 Hz each is
        # closer to browsers retrying and still fine-grained against start times of seconds.
        burst_s = await asyncio.gather(*(bench.one_session(poll_s=0.5) for _ in range(burst)))
        burst_wall = time.perf_counter() - started
        await bench.stop_containers()
        overhead = await bench.proxy_overhead(requests)
    finally:
        await bench.stop()
        await bench_cleanup(admin, name)
    return {
        "benchmark": "notebook_start",
        "path": "agent create (real Docker) -> JupyterLab answering through the app proxy",
        "image": IMAGE,
        "sequential": {"sessions": sessions, "poll_s": 0.05, "ready_ms": summary(sequential)},
        "burst": {
            "sessions": burst,
            "poll_s": 0.5,
            "ready_ms": summary([s * 1000 for s in burst_s]),
            "wall_s": round(burst_wall, 2),
        },
        "proxy_overhead": overhead,
    }


async def bench_cleanup(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(sessions=args.sessions, burst=args.burst, requests=args.requests))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
