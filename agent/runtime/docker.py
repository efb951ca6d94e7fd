"""Docker runtime (aiodocker) with locked-down defaults.

Every container: Init (so PID 1 forwards signals), no privileges, CapDrop ALL plus the few
capabilities an image needs to drop to its own user, no-new-privileges, memory = memory+swap,
ports published on the configured host IP only, and labels carrying the bindings. Stats come
from cgroup files (the Docker stats API takes over a second per call).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from agent import labels as L
from agent.config import AgentConfig
from agent.contract import ContainerState, ContainerStats, ImageInfo
from agent.errors import (
    ContainerExists,
    ContainerNotFound,
    ImageNotFound,
    RuntimeFailure,
    RuntimeUnavailable,
)
from agent.runtime.base import RuntimeContainer, RuntimeEvent, RuntimeSpec
from agent.runtime.cgroups import read_counters

log = logging.getLogger(__name__)

# Enough for an image's entrypoint to chown its files and switch to an unprivileged user.
MINIMAL_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "KILL"]
EVENT_RETRY_MAX_S = 10.0  # cap on the back-off while the engine's event stream is down
_STATES = {
    "running": ContainerState.RUNNING,
    "restarting": ContainerState.RUNNING,
    "paused": ContainerState.RUNNING,
    "exited": ContainerState.EXITED,
    "dead": ContainerState.EXITED,
    "created": ContainerState.EXITED,
}
T = TypeVar("T")


class DockerRuntime:
    name = "docker"

    def __init__(self, config: AgentConfig) -> None:
        self._config = config
        self._docker: aiodocker.Docker | None = None

    # -- protocol --------------------------------------------------------------------------

    async def create(self, spec: RuntimeSpec) -> RuntimeContainer:
        docker = self._client()
        name = self._name(spec.container_id)
        container = await self._call(
            lambda: docker.containers.create(self._container_config(spec), name=name),
            what=f"create {spec.container_id}",
        )
        try:
            await self._call(container.start, what=f"start {spec.container_id}")
            info = await self._call(container.show, what=f"inspect {spec.container_id}")
        except BaseException:
            await self._remove_quietly(name)
            raise
        return _to_runtime_container(info)

    async def destroy(self, container_id: str) -> bool:
        docker = self._client()
        container = docker.containers.container(self._name(container_id))
        try:
            await self._call(lambda: container.stop(t=int(self._config.stop_grace_s)), what="stop")
        except ContainerNotFound:
            return False
        except RuntimeFailure as exc:
            log.warning("stop %s failed, removing anyway: %s", container_id, exc)
        try:
            await self._call(lambda: container.delete(force=True, v=True), what="remove")
        except ContainerNotFound:
            return False
        return True

    async def list(self) -> list[RuntimeContainer]:
        docker = self._client()
        filters = json.dumps({"label": [f"{L.NODE_ID}={self._config.node_id}"]})
        summaries = await self._call(
            lambda: docker.containers.list(all=True, filters=filters), what="list"
        )
        result = []
        for summary in summaries:
            try:
                info = await self._call(summary.show, what="inspect")
            except ContainerNotFound:
                continue  # removed between list and inspect
            result.append(_to_runtime_container(info))
        return result

    async def logs(self, container_id: str, *, follow: bool) -> AsyncIterator[bytes]:
        container = self._client().containers.container(self._name(container_id))
        try:
            if follow:
                stream = container.log(stdout=True, stderr=True, follow=True)
                async for chunk in stream:
                    yield chunk.encode()
                return
            lines = await self._call(lambda: container.log(stdout=True, stderr=True), what="logs")
            for line in lines:
                yield line.encode()
        except DockerError as exc:
            raise _translate(exc, what="logs") from exc

    async def stats(self, container_id: str) -> ContainerStats:
        container = self._client().containers.container(self._name(container_id))
        info = await self._call(container.show, what="inspect")
        pid = int(info.get("State", {}).get("Pid") or 0)
        counters = read_counters(pid) if pid > 0 else None
        return ContainerStats(
            container_id=container_id,
            memory_bytes=counters.memory_bytes if counters else None,
            memory_limit_bytes=counters.memory_limit_bytes if counters else None,
            cpu_ns=counters.cpu_ns if counters else None,
            pids=counters.pids if counters else None,
            source=counters.source if counters else "not running",
            at=datetime.now(UTC),
        )

    # -- optional capabilities -------------------------------------------------------------

    async def images(self) -> builtins.list[ImageInfo]:
        docker = self._client()
        images = await self._call(docker.images.list, what="list images")
        result = []
        for image in images:
            for tag in image.get("RepoTags") or []:
                if tag != "<none>:<none>":
                    result.append(ImageInfo(name=tag, labels=image.get("Labels") or {}))
        return result

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        """Exit notifications from the engine's event stream; reconnects with back-off."""
        delay = 0.5
        filters = json.dumps(
            {
                "type": ["container"],
                "event": ["die", "oom"],
                "label": [f"{L.NODE_ID}={self._config.node_id}"],
            }
        )
        while True:
            try:
                async with self._client()._query(
                    "events", params={"filters": filters}, timeout=None
                ) as response:
                    delay = 0.5
                    # Exits during the outage were not streamed: ask the caller to re-list.
                    yield RuntimeEvent(kind="resync")
                    async for line in response.content:
                        event = _parse_event(line)
                        if event is not None:
                            yield event
            except (aiohttp.ClientError, OSError, DockerError, ValueError) as exc:
                log.warning("docker event stream interrupted: %s", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, EVENT_RETRY_MAX_S)

    async def aclose(self) -> None:
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    # -- helpers ---------------------------------------------------------------------------

    def _client(self) -> aiodocker.Docker:
        if self._docker is None:
            try:
                self._docker = aiodocker.Docker(url=self._config.docker_host)
            except (ValueError, OSError) as exc:
                raise RuntimeUnavailable(f"no usable Docker engine address: {exc}") from exc
        return self._docker

    def _name(self, container_id: str) -> str:
        return f"berth.{self._config.node_id}.{container_id}"

    async def _call(self, fn: Callable[[], Awaitable[T]], *, what: str) -> T:
        try:
            return await fn()
        except DockerError as exc:
            raise _translate(exc, what=what) from exc
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise RuntimeUnavailable(f"Docker engine unreachable ({what}): {exc}") from exc

    async def _remove_quietly(self, name: str) -> None:
        try:
            await self._client().containers.container(name).delete(force=True, v=True)
        except (DockerError, aiohttp.ClientError, OSError) as exc:
            log.warning("could not remove half-created container %s: %s", name, exc)

    def _container_config(self, spec: RuntimeSpec) -> dict[str, Any]:
        exposed: dict[str, dict[str, str]] = {
            f"{p.container_port}/{p.protocol}": {} for p in spec.ports
        }
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in spec.ports:
            bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
                {"HostIp": port.host_ip, "HostPort": str(port.host_port)}
            )
        host_config: dict[str, Any] = {
            "Init": True,
            "Privileged": False,
            "CapDrop": ["ALL"],
            "CapAdd": MINIMAL_CAPS,
            "SecurityOpt": ["no-new-privileges"],
            "ReadonlyRootfs": spec.read_only_rootfs,
            "RestartPolicy": {"Name": "no"},
            "Binds": [
                f"{m.host_path}:{m.container_path}:{'ro' if m.read_only else 'rw'}"
                for m in spec.mounts
            ],
            "Devices": [
                {"PathOnHost": node, "PathInContainer": node, "CgroupPermissions": "rwm"}
                for node in spec.device_nodes
            ],
            "PortBindings": bindings,
        }
        if spec.vendor_requests:
            host_config["DeviceRequests"] = [
                {
                    "Driver": request.driver,
                    "DeviceIDs": list(request.device_ids),
                    "Capabilities": [list(request.capabilities)],
                }
                for request in spec.vendor_requests
            ]
        if spec.cpu:
            host_config["NanoCpus"] = int(spec.cpu * 1_000_000_000)
        if spec.memory_bytes:
            host_config["Memory"] = spec.memory_bytes
            host_config["MemorySwap"] = spec.memory_bytes  # no swap beyond the limit
        if spec.shm_bytes:
            host_config["ShmSize"] = spec.shm_bytes
        if spec.pids_limit:
            host_config["PidsLimit"] = spec.pids_limit
        config: dict[str, Any] = {
            "Image": spec.image,
            "Env": [f"{key}={value}" for key, value in spec.env.items()],
            "Labels": spec.labels,
            "ExposedPorts": exposed,
            "HostConfig": host_config,
            "Tty": False,
            "AttachStdout": False,
            "AttachStderr": False,
        }
        if spec.command is not None:
            config["Cmd"] = spec.command
        if spec.user:
            config["User"] = spec.user
        return config


def _translate(exc: DockerError, *, what: str) -> Exception:
    message = str(exc.message)
    if exc.status == 404 and "image" in message.lower():
        return ImageNotFound(f"image not present on this node: {message}")
    if exc.status == 404:
        return ContainerNotFound(f"{what}: {message}")
    if exc.status == 409 and "already in use" in message:
        return ContainerExists(f"{what}: {message}")
    if exc.status >= 500 and "Cannot connect" in message:
        return RuntimeUnavailable(f"{what}: {message}")
    return RuntimeFailure(f"Docker refused to {what}: {message}")


def _to_runtime_container(info: dict[str, Any]) -> RuntimeContainer:
    state = info.get("State", {})
    labels = info.get("Config", {}).get("Labels") or {}
    status = _STATES.get(state.get("Status", ""), ContainerState.UNKNOWN)
    exited = status == ContainerState.EXITED
    return RuntimeContainer(
        container_id=labels.get(L.CONTAINER_ID, info.get("Name", "").lstrip("/")),
        labels=labels,
        state=status,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        oom_killed=bool(state.get("OOMKilled")),
        started_at=_timestamp(state.get("StartedAt")),
        finished_at=_timestamp(state.get("FinishedAt")) if exited else None,
    )


def _timestamp(value: str | None) -> datetime | None:
    if not value or value.startswith("0001-"):
        return None
    head, _, fraction = value.rstrip("Z").partition(".")
    # Docker writes nanoseconds; datetime takes at most microseconds.
    text = f"{head}.{fraction[:6]}" if fraction else head
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _parse_event(line: bytes) -> RuntimeEvent | None:
    line = line.strip()
    if not line:
        return None
    data = json.loads(line)
    attributes = (data.get("Actor") or {}).get("Attributes") or {}
    container_id = attributes.get(L.CONTAINER_ID)
    if not container_id:
        return None
    return RuntimeEvent(kind="exited", container_id=container_id)
