"""Fixtures for images, the app proxy and idle culling: a manager app with the images and app
routes, rows for agents and running sessions written straight through the ORM, containers
started with the docker CLI (real engine from scripts/test-services), and a loop context for
the idle step."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import delete

from manager.api.apps import APP_PROXY_KEY, APP_ROUTES, install_app_proxy
from manager.api.framework import make_handler, utc_clock
from manager.api.images import IMAGE_ROUTES
from manager.app import create_app
from manager.config import ManagerConfig
from manager.db.models import (
    AgentRow,
    AgentStatus,
    DomainRow,
    ProjectRole,
    ProjectRow,
    SessionContainerRow,
    SessionRow,
    UserRole,
)
from manager.lifecycle.session import SessionStatus, SessionType
from manager.metrics import ApiMetrics
from manager.reconcilers.context import LoopContext
from manager.services.app_proxy import app_env
from tests.factories import Actor, World, unique


def build_app(config: ManagerConfig) -> web.Application:
    """The manager app, plus the images and app routes if the composition root does not have
    them yet (they are wired in manager/api/routes.py and manager/app.py)."""
    app = create_app(config)
    paths = {r.canonical for r in app.router.resources()}
    state_clock = utc_clock
    if IMAGE_ROUTES[0].path not in paths or APP_ROUTES[0].path not in paths:
        from manager.state import STATE_KEY

        state = app[STATE_KEY]
        for route in [*IMAGE_ROUTES, *APP_ROUTES]:
            if route.path in paths and route.method in _methods(app, route.path):
                continue
            handler = make_handler(route, db_factory=state.db_factory, clock=state_clock)
            handler.berth_route = route  # type: ignore[attr-defined]
            app.router.add_route(route.method, route.path, handler)
    if APP_PROXY_KEY not in app:
        install_app_proxy(app)
    return app


def _methods(app: web.Application, path: str) -> set[str]:
    return {
        r.method
        for resource in app.router.resources()
        if resource.canonical == path
        for r in resource
    }


@pytest.fixture
async def apps_api(aiohttp_client: Any, manager_config: ManagerConfig) -> Any:
    return await aiohttp_client(build_app(manager_config))


@dataclass
class Tenant:
    domain: DomainRow
    project: ProjectRow
    owner: Actor
    other: Actor  # a member of the same project, not an admin
    admin: Actor  # the project's admin
    superadmin: Actor


@pytest.fixture
async def tenant(world: World) -> Tenant:
    domain = await world.domain()
    project = await world.project(domain)
    return Tenant(
        domain=domain,
        project=project,
        owner=await world.actor(domain, projects={project.id: ProjectRole.MEMBER}),
        other=await world.actor(domain, projects={project.id: ProjectRole.MEMBER}),
        admin=await world.actor(domain, projects={project.id: ProjectRole.ADMIN}),
        superadmin=await world.actor(domain, role=UserRole.SUPERADMIN),
    )


@dataclass
class Rows:
    """Creates agents and sessions for one test and deletes them afterwards, so the loops of
    other tests never see them."""

    world: World
    sessions: list[uuid.UUID] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)

    async def agent(
        self,
        *,
        images: list[dict[str, Any]] | None = None,
        devices: list[dict[str, Any]] | None = None,
        status: AgentStatus = AgentStatus.ALIVE,
        resource_group: str = "default",
    ) -> AgentRow:
        row = AgentRow(
            id=unique("node"),
            resource_group=resource_group,
            advertised_url="http://127.0.0.1:1",
            architecture="x86_64",
            runtime="docker",
            status=status,
            capacity={"cpu": "4", "mem": str(8 << 30)},
            devices=devices or [],
            images=images or [],
            allocated={},
            last_heartbeat_at=datetime.now(UTC),
        )
        async with self.world.db_factory() as db, db.begin():
            db.add(row)
        self.agents.append(row.id)
        return row

    async def session(
        self,
        tenant: Tenant,
        *,
        node_id: str,
        ports: list[dict[str, Any]],
        status: SessionStatus = SessionStatus.RUNNING,
        type_: SessionType = SessionType.INTERACTIVE,
        idle_timeout_s: int | None = None,
        started_ago_s: float = 0.0,
        last_activity_ago_s: float | None = None,
        devices: dict[str, list[str]] | None = None,
        session_id: uuid.UUID | None = None,
        image: str = "berth/busybox:test",
    ) -> SessionRow:
        now = datetime.now(UTC)
        sid = session_id or uuid.uuid4()
        row = SessionRow(
            id=sid,
            name=unique("nb"),
            domain_id=tenant.domain.id,
            project_id=tenant.project.id,
            user_id=tenant.owner.user.id,
            resource_group="default",
            type=type_,
            image=image,
            architecture="x86_64",
            env={},
            containers_spec=[{"cpu": "1", "mem": str(1 << 30)}],
            ports=[{k: p[k] for k in ("name", "protocol", "container_port")} for p in ports],
            idle_timeout_s=idle_timeout_s,
            status=status,
            status_reason="started",
            status_changed_at=now,
            waiting_since=now - timedelta(seconds=started_ago_s + 1),
            started_at=now - timedelta(seconds=started_ago_s)
            if status is SessionStatus.RUNNING
            else None,
            last_activity_at=None
            if last_activity_ago_s is None
            else now - timedelta(seconds=last_activity_ago_s),
            created_at=now,
        )
        container = SessionContainerRow(
            id=f"c-{uuid.uuid4().hex[:12]}",
            session_id=sid,
            attempt=0,
            index=0,
            node_id=node_id,
            domain_id=tenant.domain.id,
            project_id=tenant.project.id,
            user_id=tenant.owner.user.id,
            resource_group="default",
            slots={"cpu": "1", "mem": str(1 << 30)},
            devices=devices or {},
            state="running",
            ports=ports,
            allocated_at=now,
            started_at=now,
        )
        async with self.world.db_factory() as db, db.begin():
            db.add(row)
            await db.flush()
            db.add(container)
        self.sessions.append(sid)
        return row

    async def get(self, session_id: uuid.UUID) -> SessionRow:
        async with self.world.db_factory() as db:
            row = await db.get(SessionRow, session_id)
            assert row is not None
            return row

    async def cleanup(self) -> None:
        async with self.world.db_factory() as db, db.begin():
            if self.sessions:
                await db.execute(delete(SessionRow).where(SessionRow.id.in_(self.sessions)))
            if self.agents:
                await db.execute(delete(AgentRow).where(AgentRow.id.in_(self.agents)))


@pytest.fixture
async def rows(world: World) -> AsyncIterator[Rows]:
    made = Rows(world)
    yield made
    await made.cleanup()


def port(name: str, host_port: int, container_port: int = 8888) -> dict[str, Any]:
    return {
        "name": name,
        "protocol": "tcp",
        "container_port": container_port,
        "host_ip": "127.0.0.1",
        "host_port": host_port,
    }


# --- containers -------------------------------------------------------------------------------


async def docker(*args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {err.decode()[-2000:]}")
    return out.decode().strip()


@dataclass
class Container:
    name: str
    host_port: int


async def run_container(
    image: str,
    *,
    container_port: int,
    env: dict[str, str] | None = None,
    command: list[str] | None = None,
) -> Container:
    name = unique("berth-nbtest")
    args = ["run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1::{container_port}"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    await docker(*args, image, *(command or []))
    mapping = await docker("port", name, f"{container_port}/tcp")
    host_port = int(mapping.splitlines()[0].rsplit(":", 1)[1])
    return Container(name=name, host_port=host_port)


async def remove_container(container: Container) -> None:
    await docker("rm", "-f", container.name, check=False)


def session_env(config: ManagerConfig, session_id: uuid.UUID) -> dict[str, str]:
    return app_env(config.secret_key.get_secret_value(), session_id)


async def wait_until(probe: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await probe():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout_s}s")
        await asyncio.sleep(0.1)


# --- loops ------------------------------------------------------------------------------------


@dataclass
class Woken:
    names: list[str] = field(default_factory=list)

    def __call__(self, name: str) -> None:
        self.names.append(name)


@pytest.fixture
async def loop_ctx(manager_config: ManagerConfig, world: World) -> AsyncIterator[LoopContext]:
    async with aiohttp.ClientSession() as http:
        yield LoopContext(
            config=manager_config,
            db_factory=world.db_factory,
            clock=lambda: datetime.now(UTC),
            http=http,
            metrics=ApiMetrics(),
            owner="idle-test",
            wake=Woken(),
        )
