"""Wire models between the manager and an agent (stdlib + pydantic only; the manager imports this).

Slot maps are `dict[str, Decimal]`; pydantic serialises Decimal as a JSON string, so amounts
such as GPU shares keep exact decimal arithmetic across the wire.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CLUSTER_AUTH_HEADER = "X-Berth-Cluster-Secret"
"""Header carrying the shared cluster secret, manager → agent and agent → manager."""

REQUEST_ID_HEADER = "X-Request-Id"

DEVICE_MANIFEST_PATH = "/etc/berth/devices.json"
"""Where a Docker container finds the JSON list of devices bound to it."""

SlotMap = dict[str, Decimal]

CONTAINER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_CONTAINER_ID_RE = re.compile(CONTAINER_ID_PATTERN)


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    DEVICE_UNKNOWN = "device_unknown"
    DEVICE_BUSY = "device_busy"
    SLOT_UNKNOWN = "slot_unknown"
    INSUFFICIENT_CAPACITY = "insufficient_capacity"
    PORTS_EXHAUSTED = "ports_exhausted"
    BAD_MOUNT = "bad_mount"
    IMAGE_NOT_FOUND = "image_not_found"
    RUNTIME_UNAVAILABLE = "runtime_unavailable"
    RUNTIME_ERROR = "runtime_error"
    CONTAINER_NOT_FOUND = "container_not_found"
    CONTAINER_EXISTS = "container_exists"
    INTERNAL = "internal"


class ErrorBody(BaseModel):
    """Body of every non-2xx agent response."""

    code: str
    message: str
    request_id: str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceHealth(StrEnum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class DeviceInfo(_Model):
    """One accelerator as discovered by a device plugin."""

    id: str = Field(description="Node-unique device id, e.g. a GPU UUID or 'fake-cuda-0'.")
    plugin: str = Field(description="Name of the plugin that owns the device.")
    slot_name: str = Field(description="Whole-device slot, e.g. 'cuda.device'.")
    model: str = ""
    memory_bytes: int = 0
    numa_node: int | None = None
    health: DeviceHealth = DeviceHealth.HEALTHY
    share_slot_name: str | None = Field(
        default=None, description="Fractional slot (e.g. 'cuda.shares') if shareable."
    )
    share_capacity: Decimal | None = Field(
        default=None, description="Shares one device offers in `share_slot_name`."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Vendor details (index, UUID, MIG parent, PCI id...)."
    )


class MountMode(StrEnum):
    RO = "ro"
    RW = "rw"


class MountSpec(_Model):
    host_path: str
    container_path: str
    mode: MountMode = MountMode.RO
    fuse: dict[str, str] | None = Field(
        default=None,
        description="A storage_proxy.contract.FuseMountSpec: the agent mounts the folder with "
        "FUSE for this container (host_path is then unused) and unmounts it on destroy.",
    )


class PortProtocol(StrEnum):
    TCP = "tcp"
    UDP = "udp"


class ServicePort(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    protocol: PortProtocol = PortProtocol.TCP
    container_port: int = Field(ge=1, le=65535)


class PublishedPort(ServicePort):
    host_ip: str
    host_port: int


class CreateContainerRequest(_Model):
    """What the manager asks an agent to run. `container_id` is assigned by the manager."""

    container_id: Annotated[str, Field(pattern=CONTAINER_ID_PATTERN)]
    session_id: Annotated[str, Field(min_length=1, max_length=128)]
    image: str = Field(min_length=1)
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    slots: SlotMap = Field(
        default_factory=dict,
        description="Requested amounts: 'cpu' (cores), 'mem' (bytes), device and share slots.",
    )
    devices: dict[str, list[str]] | None = Field(
        default=None,
        description="Explicit device ids per slot chosen by the manager; else the agent picks.",
    )
    mounts: list[MountSpec] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    shm_bytes: int | None = Field(default=None, ge=0)
    pids_limit: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, pattern=r"^[0-9]+(:[0-9]+)?$")
    read_only_rootfs: bool = False
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("slots")
    @classmethod
    def _non_negative(cls, value: SlotMap) -> SlotMap:
        for name, amount in value.items():
            if amount < 0 or not amount.is_finite():
                raise ValueError(f"slot {name!r} must be a finite non-negative amount")
        return value


ContainerSpec = CreateContainerRequest


class ContainerState(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


class ContainerInfo(_Model):
    container_id: str
    session_id: str | None
    image: str = ""
    state: ContainerState
    exit_code: int | None = None
    oom_killed: bool = False
    orphan: bool = Field(default=False, description="True when no session can be tied to it.")
    slots: SlotMap = Field(default_factory=dict)
    devices: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict, description="slot name → {device id → amount bound}."
    )
    ports: list[PublishedPort] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ContainerEventKind(StrEnum):
    STARTED = "started"
    EXITED = "exited"
    OOM = "oom"
    DESTROYED = "destroyed"
    ORPHANED = "orphaned"


class ContainerEvent(_Model):
    container_id: str
    session_id: str | None
    kind: ContainerEventKind
    exit_code: int | None = None
    at: datetime


class ContainerStats(_Model):
    container_id: str
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    cpu_ns: int | None = Field(default=None, description="Cumulative CPU time used.")
    pids: int | None = None
    source: str = Field(default="", description="Where the numbers came from (cgroup v1/v2).")
    at: datetime


class ImageInfo(_Model):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)


class RuntimeHealth(_Model):
    status: Literal["ok", "degraded"]
    message: str = ""


class NodeReport(_Model):
    node_id: str
    resource_group: str
    advertised_url: str
    architecture: str
    runtime: str
    capacity: SlotMap
    free: SlotMap
    devices: list[DeviceInfo]
    device_free: dict[str, Decimal] = Field(
        default_factory=dict,
        description="Per device id: free amount (1/0 for whole devices, shares if shareable).",
    )
    containers: list[ContainerInfo]
    images: list[ImageInfo]
    runtime_health: RuntimeHealth
    plugin_errors: dict[str, str] = Field(default_factory=dict)
    agent_version: str
    reported_at: datetime


def is_valid_container_id(value: str) -> bool:
    return bool(_CONTAINER_ID_RE.match(value))
