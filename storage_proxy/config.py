"""Storage proxy settings: restart-only, process-local (TOML file + `BERTH_STORAGE_*` environment).

Precedence: keyword arguments > environment > TOML file > defaults. Nested values in the
environment use `__`; `volumes` is a list, so set it as JSON, e.g.
`BERTH_STORAGE_VOLUMES='[{"name":"local","backend":"posix","options":{"root":"/srv/vf"}}]'`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from storage_proxy.contract import VOLUME_NAME_PATTERN

CONFIG_PATH_ENV = "BERTH_STORAGE_CONFIG"


class PosixVolumeOptions(BaseModel):
    """A directory: local disk, an NFS mountpoint or a distributed FS mounted on every node."""

    model_config = ConfigDict(extra="forbid")

    root: Path = Field(description="Absolute directory holding the volume's folders.")
    quota_mode: Literal["accounting", "none"] = Field(
        default="accounting",
        description=(
            "accounting: the proxy sums file sizes and refuses uploads past the quota; "
            "none: quotas are the filesystem's business (see docs/storage.md)."
        ),
    )
    node_root: Path | None = Field(
        default=None,
        description="Where nodes see `root` when it differs from the proxy's path; else root.",
    )

    @model_validator(mode="after")
    def _absolute(self) -> PosixVolumeOptions:
        if not self.root.is_absolute():
            raise ValueError(f"posix root must be absolute: {self.root}")
        return self


class S3VolumeOptions(BaseModel):
    """A bucket on an S3-compatible server; each folder is a key prefix."""

    model_config = ConfigDict(extra="forbid")

    endpoint_url: str = Field(description="S3 endpoint, e.g. http://127.0.0.1:8333.")
    bucket: str = Field(description="Bucket holding the volume; created on startup if missing.")
    access_key: str = Field(description="Access key id.")
    secret_key: SecretStr = Field(description="Secret access key.")
    region: str = Field(default="us-east-1", description="Signing region (s3v4).")
    addressing_style: Literal["path", "virtual"] = Field(
        default="path",
        description="path: http://host/bucket/key; virtual: http://bucket.host/key.",
    )
    part_size_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Multipart upload part size (S3 minimum 5 MiB); memory per active upload.",
    )
    mount_root: Path = Field(
        default=Path("/var/lib/berth/s3"),
        description="Directory on nodes under which folders are FUSE-mounted (<root>/<vol>/<id>).",
    )
    filer: str | None = Field(
        default=None,
        description=(
            "SeaweedFS filer host:port that nodes mount with `weed mount`; None when the "
            "bucket is not served by SeaweedFS (then mount info is refused)."
        ),
    )
    filer_buckets_path: str = Field(
        default="/buckets", description="Filer directory holding the S3 buckets."
    )


class VolumeConfig(BaseModel):
    """One volume = one backend instance."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=VOLUME_NAME_PATTERN, description="Volume name used in all APIs.")
    backend: Literal["posix", "s3"] = Field(
        description="Backend kind (entry point berth.volumes)."
    )
    options: PosixVolumeOptions | S3VolumeOptions = Field(
        description="Backend options; the model is chosen by `backend`."
    )

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("options"), dict):
            model = PosixVolumeOptions if data.get("backend") == "posix" else S3VolumeOptions
            if data.get("backend") in ("posix", "s3"):
                data = {**data, "options": model.model_validate(data["options"])}
        return data

    @model_validator(mode="after")
    def _matching(self) -> VolumeConfig:
        expected = PosixVolumeOptions if self.backend == "posix" else S3VolumeOptions
        if not isinstance(self.options, expected):
            raise ValueError(f"volume {self.name}: options do not match backend {self.backend}")
        return self


class StorageProxyConfig(BaseSettings):
    """Everything one storage proxy process needs; validated at startup."""

    model_config = SettingsConfigDict(
        env_prefix="BERTH_STORAGE_", env_nested_delimiter="__", extra="forbid"
    )

    name: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="Name of this proxy in the cluster: its key is storage-proxies/<name>.",
    )
    internal_host: str = Field(
        default="127.0.0.1", description="Address of the internal API (manager and agents)."
    )
    internal_port: int = Field(default=6022, ge=0, le=65535, description="Internal API port.")
    public_host: str = Field(
        default="127.0.0.1", description="Address of the public API (browsers, CLI)."
    )
    public_port: int = Field(default=6021, ge=0, le=65535, description="Public API port.")
    public_url: str | None = Field(
        default=None,
        description="Base URL clients are told to use; defaults to http://public_host:port.",
    )
    advertised_internal_url: str | None = Field(
        default=None,
        description=(
            "URL managers reach the internal API at, published in the config store; defaults "
            "to http://internal_host:internal_port (set it when binding 0.0.0.0)."
        ),
    )
    config_store_url: str | None = Field(
        default=None,
        description=(
            "Config store (etcd://host:port/prefix) to publish storage-proxies/<name> in under "
            "a lease while the proxy runs, for managers to discover; None: no registration."
        ),
    )
    registration_ttl_s: float = Field(
        default=10.0, ge=2, description="TTL of the proxy's registration lease in the store."
    )
    cluster_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Shared secret required in X-Berth-Cluster-Secret on the internal API.",
    )
    token_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HS256 key that verifies manager-minted public tokens (same on the manager).",
    )
    volumes: list[VolumeConfig] = Field(
        default_factory=list, description="Volumes this proxy serves."
    )
    cors_allow_origins: list[str] = Field(
        default_factory=lambda: ["*"],
        description=(
            "Origins allowed to call the public API from a browser; tokens travel in headers "
            "or the query, never in cookies, so '*' is safe."
        ),
    )
    archive_max_files: int = Field(
        default=100_000, gt=0, description="Most files one tar archive download may contain."
    )

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> StorageProxyConfig:
        """Read the TOML file (argument, else $BERTH_STORAGE_CONFIG), then env, then overrides."""
        toml_path = path if path is not None else os.environ.get(CONFIG_PATH_ENV)
        if toml_path is None:
            return cls(**overrides)
        if not Path(toml_path).is_file():
            raise FileNotFoundError(f"storage proxy config file not found: {toml_path}")

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

    @model_validator(mode="after")
    def _unique_volumes(self) -> StorageProxyConfig:
        names = [v.name for v in self.volumes]
        if len(names) != len(set(names)):
            raise ValueError(f"volume names must be unique: {names}")
        return self

    @property
    def advertised_public_url(self) -> str:
        return (self.public_url or f"http://{self.public_host}:{self.public_port}").rstrip("/")

    @property
    def internal_url(self) -> str:
        """Where managers reach the internal API (published in the config store)."""
        url = self.advertised_internal_url or f"http://{self.internal_host}:{self.internal_port}"
        return url.rstrip("/")
