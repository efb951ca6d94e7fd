"""The ContainerRuntime protocol and the runtime-neutral data passed through it.

Runtimes are constructed as `Runtime(config: AgentConfig)` without I/O and scope everything
to containers labelled with this node's id (`ai.berth.node-id`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from agent.contract import ContainerState, ContainerStats, ImageInfo
from agent.devices.base import HostMount, VendorDeviceRequest


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    protocol: str
    host_ip: str
    host_port: int


@dataclass
class RuntimeSpec:
    container_id: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    labels: dict[str, str]
    cpu: Decimal | None = None
    memory_bytes: int | None = None
    shm_bytes: int | None = None
    pids_limit: int | None = None
    user: str | None = None
    read_only_rootfs: bool = False
    mounts: list[HostMount] = field(default_factory=list)
    device_nodes: list[str] = field(default_factory=list)
    vendor_requests: list[VendorDeviceRequest] = field(default_factory=list)
    ports: list[PortBinding] = field(default_factory=list)


@dataclass
class RuntimeContainer:
    container_id: str
    labels: dict[str, str]
    state: ContainerState
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class RuntimeEvent:
    """`exited`: a container stopped; `resync`: events may have been missed, list again."""

    kind: Literal["exited", "resync"]
    container_id: str = ""


@runtime_checkable
class ContainerRuntime(Protocol):
    """Contract for a container backend.

    - `create(spec)` creates *and starts* the container. On any failure it leaves nothing
      behind and raises ImageNotFound, RuntimeUnavailable, ContainerExists or RuntimeFailure.
    - `destroy(id)` stops (SIGTERM, then SIGKILL after the grace period) and removes; it is
      idempotent and returns whether something existed.
    - `list()` returns this node's containers, running and exited, with labels.
    - `logs(id, follow=...)` yields raw output chunks; raises ContainerNotFound.
    - `stats(id)` reads cgroup counters now; raises ContainerNotFound.
    Errors reaching the engine raise RuntimeUnavailable; the caller decides whether to retry.
    """

    name: str

    async def create(self, spec: RuntimeSpec) -> RuntimeContainer: ...

    async def destroy(self, container_id: str) -> bool: ...

    async def list(self) -> list[RuntimeContainer]: ...

    def logs(self, container_id: str, *, follow: bool) -> AsyncIterator[bytes]: ...

    async def stats(self, container_id: str) -> ContainerStats: ...


@runtime_checkable
class EventSource(Protocol):
    """Optional: push notification of exits, so the agent need not poll `list()`."""

    def events(self) -> AsyncIterator[RuntimeEvent]: ...


@runtime_checkable
class ImageSource(Protocol):
    """Optional: images present on the node, reported to the scheduler."""

    async def images(self) -> list[ImageInfo]: ...


@runtime_checkable
class Closeable(Protocol):
    async def aclose(self) -> None: ...
