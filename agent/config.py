"""Agent settings: restart-only, node-local (TOML file + `BERTH_AGENT_*` environment variables).

Precedence: keyword arguments > environment > TOML file > defaults. Nested values in the
environment use `__`, e.g. `BERTH_AGENT_DEVICE_OPTIONS__FAKE__COUNT=4`.
"""

from __future__ import annotations

import os
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_PATH_ENV = "BERTH_AGENT_CONFIG"


class AgentConfig(BaseSettings):
    """Everything one agent process needs; validated at startup."""

    model_config = SettingsConfigDict(
        env_prefix="BERTH_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    node_id: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="Stable identity of this node in the cluster; stamped on every container.",
    )
    resource_group: str = Field(
        default="default", description="Scheduling partition this node belongs to."
    )
    listen_host: str = Field(default="127.0.0.1", description="Address the agent API binds to.")
    listen_port: int = Field(default=6011, ge=0, le=65535, description="Agent API port.")
    advertised_url: str | None = Field(
        default=None,
        description="URL the manager uses to reach this agent; defaults to http://host:port.",
    )
    runtime: Literal["docker", "process"] = Field(
        default="docker", description="Container runtime backend (entry point `berth.runtimes`)."
    )
    docker_host: str | None = Field(
        default=None,
        description="Docker engine address (e.g. unix:///run/docker.sock); else DOCKER_HOST.",
    )
    device_plugins: list[str] = Field(
        default_factory=list,
        description=(
            "Active device plugins by entry-point name (`berth.devices`); `name:instance` runs "
            "a second instance of one plugin, e.g. `npu:gaudi`."
        ),
    )
    device_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Per-plugin options keyed by the entry in device_plugins, e.g. "
            "{fake = {count = 4, kind = 'cuda', model = 'FakeGPU', memory_bytes = 17179869184}}."
        ),
    )
    cpu_capacity: Decimal | None = Field(
        default=None, description="CPU cores offered; defaults to the host's core count."
    )
    mem_capacity: int | None = Field(
        default=None, description="Memory bytes offered; defaults to the host's MemTotal."
    )
    reserved_cpu: Decimal = Field(
        default=Decimal(0), ge=0, description="CPU cores kept back for the host and the agent."
    )
    reserved_mem: int = Field(
        default=0, ge=0, description="Memory bytes kept back for the host and the agent."
    )
    port_range: tuple[int, int] = Field(
        default=(30000, 31000),
        description="Inclusive host port range for published service ports ('30000-31000').",
    )
    host_ip: str = Field(
        default="127.0.0.1", description="Host address service ports are published on."
    )
    scratch_root: Path = Field(
        default=Path("/var/lib/berth/agent"),
        description="Agent-owned directory for device manifests, process logs and manifests.",
    )
    manager_url: str | None = Field(
        default=None, description="Manager base URL for heartbeats and events; None disables."
    )
    cluster_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Shared secret sent and required in the X-Berth-Cluster-Secret header.",
    )
    config_store_url: str | None = Field(
        default=None,
        description=(
            "Config store (etcd://host:port/prefix) to register this node in under a lease and "
            "to discover managers from when manager_url is unset; None: no registration."
        ),
    )
    registration_ttl_s: float = Field(
        default=10.0, ge=2, description="TTL of the node's registration lease in the store."
    )
    heartbeat_interval_s: float = Field(
        default=3.0, gt=0, description="Seconds between node reports to the manager."
    )
    allowed_mount_roots: list[str] = Field(
        default_factory=list,
        description="Absolute host path prefixes bind mounts may use; empty allows no mounts.",
    )
    stop_grace_s: float = Field(
        default=5.0, ge=0, description="Seconds a container gets after SIGTERM before SIGKILL."
    )

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> AgentConfig:
        """Read the TOML file (argument, else $BERTH_AGENT_CONFIG), then env, then overrides."""
        toml_path = path if path is not None else os.environ.get(CONFIG_PATH_ENV)
        if toml_path is None:
            return cls(**overrides)
        if not Path(toml_path).is_file():
            raise FileNotFoundError(f"agent config file not found: {toml_path}")

        class _FromFile(cls):  # type: ignore[valid-type,misc]
            model_config = SettingsConfigDict(**{**cls.model_config, "toml_file": toml_path})

        loaded = _FromFile(**overrides)
        return cls.model_validate(loaded.model_dump())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("port_range", mode="before")
    @classmethod
    def _parse_range(cls, value: Any) -> Any:
        if isinstance(value, str):
            low, sep, high = value.partition("-")
            if not sep:
                raise ValueError("port_range must look like '30000-31000'")
            return (int(low), int(high))
        return value

    @field_validator("allowed_mount_roots")
    @classmethod
    def _absolute_roots(cls, value: list[str]) -> list[str]:
        for root in value:
            if not os.path.isabs(root):
                raise ValueError(f"allowed mount root must be absolute: {root!r}")
        return [os.path.normpath(root) for root in value]

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        low, high = self.port_range
        if not (1 <= low <= high <= 65535):
            raise ValueError(f"port_range {low}-{high} is not a valid range")
        return self

    @property
    def public_url(self) -> str:
        return self.advertised_url or f"http://{self.listen_host}:{self.listen_port}"
