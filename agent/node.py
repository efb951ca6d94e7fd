"""The agent's service layer: create/destroy containers, keep state, produce reports and events.

Handlers in agent/api.py call these methods; nothing here knows about HTTP. State is only a
cache of the runtime: `sync()` re-lists the runtime, adopts containers it does not know
(recovery), records exits and forgets containers removed behind its back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from agent import labels as L
from agent import recovery
from agent.allocator import CPU, MEM, Allocation, Allocator, PortAllocator
from agent.config import AgentConfig
from agent.contract import (
    DEVICE_MANIFEST_PATH,
    ContainerEvent,
    ContainerEventKind,
    ContainerInfo,
    ContainerState,
    ContainerStats,
    CreateContainerRequest,
    DeviceInfo,
    ImageInfo,
    NodeReport,
    PublishedPort,
    RuntimeHealth,
)
from agent.devices.base import DevicePlugin, HostMount, Reservation
from agent.errors import (
    AgentDomainError,
    ContainerExists,
    ContainerNotFound,
    RuntimeUnavailable,
)
from agent.fuse_mounts import FuseMounts
from agent.mounts import validate_mounts
from agent.runtime.base import (
    ContainerRuntime,
    EventSource,
    ImageSource,
    PortBinding,
    RuntimeContainer,
    RuntimeSpec,
)

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
EVENT_BUFFER = 10_000  # events kept while the manager is unreachable; oldest dropped first
WATCH_RETRY_S = 2.0
GONE_MEMORY_S = 60.0  # far longer than one runtime list() takes

# The container lifecycle as seen by the agent; anything else is ignored as stale.
TRANSITIONS: dict[ContainerState, set[ContainerState]] = {
    ContainerState.RUNNING: {ContainerState.EXITED, ContainerState.UNKNOWN},
    ContainerState.UNKNOWN: {ContainerState.RUNNING, ContainerState.EXITED},
    ContainerState.EXITED: set(),
}


class Node:
    def __init__(
        self,
        *,
        config: AgentConfig,
        plugins: Sequence[DevicePlugin],
        runtime: ContainerRuntime,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self.runtime = runtime
        self._plugins = list(plugins)
        self._clock = clock
        self.devices: list[DeviceInfo] = []
        self._plugin_of: dict[str, DevicePlugin] = {}
        self.allocator = Allocator(devices=[], cpu=Decimal(0), mem=Decimal(0))
        low, high = config.port_range
        self.ports = PortAllocator(low=low, high=high, host_ip=config.host_ip)
        self._records: dict[str, ContainerInfo] = {}
        self._born: dict[str, float] = {}
        self._busy: set[str] = set()  # ids being created or destroyed right now
        self._skipped: set[str] = set()  # busy ids a sync passed over; re-sync afterwards
        self._tasks: set[asyncio.Task[None]] = set()
        self._gone: dict[str, float] = {}  # destroyed id → when; stale lists must not revive it
        self._lock = asyncio.Lock()
        self._events: deque[ContainerEvent] = deque(maxlen=EVENT_BUFFER)
        self.events_ready = asyncio.Event()
        self.health = RuntimeHealth(status="degraded", message="not synced yet")
        self.fuse = FuseMounts(config.scratch_root / "fuse")

    # -- startup ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Discover devices, size the allocator, then adopt what the runtime already runs."""
        for plugin in self._plugins:
            for device in plugin.discover():
                if device.id in self._plugin_of:
                    raise ValueError(f"device id {device.id} reported by two plugins")
                self._plugin_of[device.id] = plugin
                self.devices.append(device)
        cpu, mem = _host_capacity(self.config)
        self.allocator = Allocator(devices=self.devices, cpu=cpu, mem=mem)
        await self.sync()
        await self.fuse.release_all_but(set(self._records))

    # -- commands --------------------------------------------------------------------------

    async def create_container(self, request: CreateContainerRequest) -> ContainerInfo:
        """All or nothing: any failure releases devices and ports and removes the container."""
        cid = request.container_id
        mounts = validate_mounts(
            self.fuse.plan(cid, request.mounts),
            allowed_roots=[*self.config.allowed_mount_roots, str(self.fuse.dir_of(cid))],
        )
        async with self._lock:
            if cid in self._records or cid in self._busy:
                raise ContainerExists(f"container {cid} already exists on this node")
            allocation = self.allocator.allocate(
                owner=cid, slots=request.slots, explicit=request.devices
            )
            try:
                host_ports = self.ports.allocate(owner=cid, count=len(request.ports))
            except AgentDomainError:
                self.allocator.release(cid)
                raise
            self._busy.add(cid)
        published = [
            PublishedPort(**port.model_dump(), host_ip=self.config.host_ip, host_port=host_port)
            for port, host_port in zip(request.ports, host_ports, strict=True)
        ]
        try:
            await self.fuse.mount(cid, request.mounts, user=request.user)
            spec = self._runtime_spec(request, allocation, published, mounts)
            created = await self.runtime.create(spec)
        except BaseException as exc:
            await self._roll_back(cid, runtime_may_hold=not isinstance(exc, ContainerExists))
            raise
        finally:
            self._busy.discard(cid)
        info = self._to_info(created, allocation=allocation, ports=published, orphan=False)
        self._store(info)
        self._emit(info, ContainerEventKind.STARTED)
        if info.state == ContainerState.EXITED:
            self._emit_exit(info)
        if cid in self._skipped:
            # It exited while being created and the runtime's notice was passed over.
            self._skipped.discard(cid)
            self._spawn(self.sync())
        log.info("container started container_id=%s session_id=%s", cid, request.session_id)
        return info

    async def destroy_container(self, container_id: str) -> bool:
        """Idempotent; returns whether the container existed."""
        if container_id in self._busy:
            raise ContainerExists(f"container {container_id} is being created or destroyed")
        self._busy.add(container_id)
        try:
            existed = await self.runtime.destroy(container_id)
            async with self._lock:
                info = self._records.pop(container_id, None)
                self._born.pop(container_id, None)
                self._gone[container_id] = time.monotonic()
                self.allocator.release(container_id)
                self.ports.release(container_id)
            _remove_scratch(self._scratch(container_id))
            await self.fuse.release(container_id)
        finally:
            self._busy.discard(container_id)
            self._skipped.discard(container_id)
        if info is not None or existed:
            session_id = info.session_id if info else None
            self._emit_raw(container_id, session_id, ContainerEventKind.DESTROYED, None)
            log.info("container destroyed container_id=%s", container_id)
        return info is not None or existed

    # -- queries ---------------------------------------------------------------------------

    def list_containers(self) -> list[ContainerInfo]:
        return sorted(self._records.values(), key=lambda info: info.container_id)

    def get_container(self, container_id: str) -> ContainerInfo:
        info = self._records.get(container_id)
        if info is None:
            raise ContainerNotFound(f"container {container_id} does not exist on this node")
        return info

    def logs(self, container_id: str, *, follow: bool) -> AsyncIterator[bytes]:
        self.get_container(container_id)
        return self.runtime.logs(container_id, follow=follow)

    async def stats(self, container_id: str) -> ContainerStats:
        self.get_container(container_id)
        return await self.runtime.stats(container_id)

    async def report(self) -> NodeReport:
        await self.sync()
        images: list[ImageInfo] = []
        if isinstance(self.runtime, ImageSource) and self.health.status == "ok":
            try:
                images = await self.runtime.images()
            except AgentDomainError as exc:
                log.warning("image listing failed: %s", exc)
        return NodeReport(
            node_id=self.config.node_id,
            resource_group=self.config.resource_group,
            advertised_url=self.config.public_url,
            architecture=platform.machine(),
            runtime=self.runtime.name,
            capacity=self.allocator.capacity(),
            free=self.allocator.free(),
            devices=self._devices_with_metrics(),
            device_free=self.allocator.device_free(),
            containers=self.list_containers(),
            images=images,
            runtime_health=self.health,
            plugin_errors={p.name: p.error for p in self._plugins if p.error},
            agent_version=AGENT_VERSION,
            reported_at=self._clock(),
        )

    def _devices_with_metrics(self) -> list[DeviceInfo]:
        """The inventory with each device's live utilisation, memory use and temperature in its
        attributes (strings, as the contract's attributes are), for the manager's node views and
        the idle culler. A plugin whose metrics fail still reports its devices."""
        live: dict[str, dict[str, str]] = {}
        for plugin in self._plugins:
            ids = [d.id for d in self.devices if self._plugin_of.get(d.id) is plugin]
            if not ids:
                continue
            try:
                samples = plugin.metrics(ids)
            except Exception as exc:  # a flaky driver must not stop heartbeats
                log.warning("device metrics failed for %s: %s", plugin.name, exc)
                continue
            for sample in samples:
                values = {
                    "utilization_pct": sample.utilization_pct,
                    "memory_used_bytes": sample.memory_used_bytes,
                    "temperature_c": sample.temperature_c,
                }
                live[sample.device_id] = {k: str(v) for k, v in values.items() if v is not None}
        return [
            d.model_copy(update={"attributes": {**d.attributes, **live[d.id]}})
            if d.id in live
            else d
            for d in self.devices
        ]

    # -- events ----------------------------------------------------------------------------

    def take_events(self) -> list[ContainerEvent]:
        events = list(self._events)
        self._events.clear()
        self.events_ready.clear()
        return events

    def return_events(self, events: Sequence[ContainerEvent]) -> None:
        """Put undelivered events back in front, keeping their order."""
        self._events.extendleft(reversed(events))
        if self._events:
            self.events_ready.set()

    async def watch_runtime(self) -> None:
        """Follow runtime exit notifications (when the runtime offers them) and re-sync."""
        if not isinstance(self.runtime, EventSource):
            return
        while True:
            try:
                async for _event in self.runtime.events():
                    await self.sync()
            except AgentDomainError as exc:
                log.warning("runtime event watch failed: %s", exc)
            await asyncio.sleep(WATCH_RETRY_S)

    async def sync(self) -> None:
        """Fold the runtime's view into ours; never raises for an unreachable runtime."""
        listed_at = time.monotonic()
        try:
            containers = await self.runtime.list()
        except RuntimeUnavailable as exc:
            self.health = RuntimeHealth(status="degraded", message=exc.message)
            return
        self.health = RuntimeHealth(status="ok")
        async with self._lock:
            seen = set()
            for container in containers:
                cid = container.container_id
                seen.add(cid)
                if cid in self._busy:
                    self._skipped.add(cid)
                    continue
                known = self._records.get(cid)
                if known is None:
                    if self._gone.get(cid, float("-inf")) >= listed_at:
                        continue  # listed before its destroy finished
                    self._adopt(container)
                else:
                    self._apply(known, container)
            for cid in list(self._records):
                if cid in seen or cid in self._busy or self._born.get(cid, 0) > listed_at:
                    continue
                info = self._records.pop(cid)
                self.allocator.release(cid)
                self.ports.release(cid)
                self._spawn(self.fuse.release(cid))
                self._emit(info, ContainerEventKind.DESTROYED)
            self._gone = {c: at for c, at in self._gone.items() if at > listed_at - GONE_MEMORY_S}

    # -- helpers ---------------------------------------------------------------------------

    def _adopt(self, container: RuntimeContainer) -> None:
        adopted = recovery.adopt(container, allocator=self.allocator, ports=self.ports)
        info = self._to_info(
            container, allocation=adopted.allocation, ports=adopted.ports, orphan=adopted.orphan
        )
        self._store(info)
        if adopted.orphan:
            log.warning("orphan container %s: %s", container.container_id, adopted.reason)
            self._emit(info, ContainerEventKind.ORPHANED)

    def _apply(self, info: ContainerInfo, container: RuntimeContainer) -> None:
        if container.state == info.state or container.state not in TRANSITIONS[info.state]:
            return
        info.state = container.state
        info.exit_code = container.exit_code
        info.oom_killed = container.oom_killed
        info.finished_at = container.finished_at
        if container.state == ContainerState.EXITED:
            self._emit_exit(info)

    def _emit_exit(self, info: ContainerInfo) -> None:
        if info.oom_killed:
            self._emit(info, ContainerEventKind.OOM)
        self._emit(info, ContainerEventKind.EXITED)
        log.info("container exited container_id=%s code=%s", info.container_id, info.exit_code)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _store(self, info: ContainerInfo) -> None:
        self._records[info.container_id] = info
        self._born[info.container_id] = time.monotonic()

    async def _roll_back(self, cid: str, *, runtime_may_hold: bool) -> None:
        if runtime_may_hold:
            try:
                await self.runtime.destroy(cid)
            except AgentDomainError as exc:
                log.warning("rollback of %s could not reach the runtime: %s", cid, exc)
        async with self._lock:
            self.allocator.release(cid)
            self.ports.release(cid)
        _remove_scratch(self._scratch(cid))
        if runtime_may_hold:  # else the mounts may belong to the container that exists
            await self.fuse.release(cid)

    def _runtime_spec(
        self,
        request: CreateContainerRequest,
        allocation: Allocation,
        published: list[PublishedPort],
        mounts: list[HostMount],
    ) -> RuntimeSpec:
        reservation = self._reserve(allocation)
        manifest = self._write_manifest(request.container_id, allocation)
        in_docker = self.runtime.name == "docker"
        env = {
            **request.env,
            **reservation.env,
            "BERTH_CONTAINER_ID": request.container_id,
            "BERTH_SESSION_ID": request.session_id,
            "BERTH_DEVICES_MANIFEST": DEVICE_MANIFEST_PATH if in_docker else str(manifest),
        }
        for port in published:
            env[f"BERTH_PORT_{port.name.upper().replace('-', '_')}"] = str(port.container_port)
        labels = L.encode(
            node_id=self.config.node_id,
            container_id=request.container_id,
            session_id=request.session_id,
            image=request.image,
            allocation=allocation,
            ports=published,
            extra=request.labels,
        )
        manifest_mount = HostMount(str(manifest), DEVICE_MANIFEST_PATH, read_only=True)
        mem = request.slots.get(MEM)
        return RuntimeSpec(
            container_id=request.container_id,
            image=request.image,
            command=request.command,
            env=env,
            labels=labels,
            cpu=request.slots.get(CPU) or None,
            memory_bytes=int(mem) if mem else None,
            shm_bytes=request.shm_bytes,
            pids_limit=request.pids_limit,
            user=request.user,
            read_only_rootfs=request.read_only_rootfs,
            mounts=[*mounts, *reservation.mounts, manifest_mount],
            device_nodes=reservation.device_nodes,
            vendor_requests=reservation.vendor_requests,
            ports=[
                PortBinding(p.container_port, p.protocol.value, p.host_ip, p.host_port)
                for p in published
            ],
        )

    def _reserve(self, allocation: Allocation) -> Reservation:
        by_plugin: dict[str, list[str]] = {}
        plugins: dict[str, DevicePlugin] = {}
        for device_id in sorted(allocation.device_ids()):
            plugin = self._plugin_of[device_id]
            plugins[plugin.name] = plugin
            by_plugin.setdefault(plugin.name, []).append(device_id)
        reservation = Reservation()
        for name, device_ids in by_plugin.items():
            reservation = reservation.merge(plugins[name].reserve(device_ids))
        return reservation

    def _write_manifest(self, container_id: str, allocation: Allocation) -> Path:
        directory = self._scratch(container_id)
        directory.mkdir(parents=True, exist_ok=True)
        by_id = {device.id: device for device in self.devices}
        entries = [
            {
                "id": device_id,
                "slot_name": slot,
                "amount": str(amount),
                "model": by_id[device_id].model,
                "memory_bytes": by_id[device_id].memory_bytes,
                "attributes": by_id[device_id].attributes,
            }
            for slot, bound in sorted(allocation.devices.items())
            for device_id, amount in sorted(bound.items())
        ]
        path = directory / "devices.json"
        path.write_text(json.dumps({"container_id": container_id, "devices": entries}, indent=1))
        path.chmod(0o644)
        return path

    def _scratch(self, container_id: str) -> Path:
        return self.config.scratch_root / "containers" / container_id

    def _to_info(
        self,
        container: RuntimeContainer,
        *,
        allocation: Allocation,
        ports: list[PublishedPort],
        orphan: bool,
    ) -> ContainerInfo:
        return ContainerInfo(
            container_id=container.container_id,
            session_id=container.labels.get(L.SESSION_ID) or None,
            image=container.labels.get(L.IMAGE, ""),
            state=container.state,
            exit_code=container.exit_code,
            oom_killed=container.oom_killed,
            orphan=orphan,
            slots=allocation.slots(),
            devices=allocation.devices,
            ports=ports,
            started_at=container.started_at,
            finished_at=container.finished_at,
        )

    def _emit(self, info: ContainerInfo, kind: ContainerEventKind) -> None:
        self._emit_raw(info.container_id, info.session_id, kind, info.exit_code)

    def _emit_raw(
        self, container_id: str, session_id: str | None, kind: ContainerEventKind, code: int | None
    ) -> None:
        self._events.append(
            ContainerEvent(
                container_id=container_id,
                session_id=session_id,
                kind=kind,
                exit_code=code,
                at=self._clock(),
            )
        )
        self.events_ready.set()


def _host_capacity(config: AgentConfig) -> tuple[Decimal, Decimal]:
    cpu = config.cpu_capacity if config.cpu_capacity is not None else Decimal(os.cpu_count() or 1)
    mem = config.mem_capacity if config.mem_capacity is not None else _mem_total()
    return (
        max(cpu - config.reserved_cpu, Decimal(0)),
        Decimal(max(mem - config.reserved_mem, 0)),
    )


def _mem_total() -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _remove_scratch(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
