"""Typed configuration of the manager process (restart-only settings: TOML + BERTH_* env).

Cluster-wide settings that may change live (scheduler defaults, volumes) live in the config
store; this model holds only what one manager process needs to start.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ManagerConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BERTH_", extra="forbid", env_nested_delimiter="__"
    )

    listen_host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    listen_port: int = Field(8080, ge=1, le=65535, description="Port the HTTP API listens on.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="API worker processes sharing the listen port (SO_REUSEPORT); one per "
        "core serves the most requests. Worker 0 runs the background loops; the others pass "
        "their wake-ups to it through the event bus, so more than one needs redis_url.",
    )
    public_url: str = Field(
        "http://127.0.0.1:8080",
        description="URL users reach the manager at (printed, used in links).",
    )
    db_url: SecretStr = Field(
        SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/berth"),
        description="SQLAlchemy URL of the PostgreSQL database (asyncpg driver).",
    )
    db_pool_size: int = Field(10, ge=1, description="Connections kept open in the DB pool.")
    redis_url: str = Field(
        "local://",
        description="Event bus: redis://host:port/db for Redis Streams, local:// for in-process.",
    )
    config_store_url: str = Field(
        "file:///var/lib/berth/config-store.json",
        description="Config store: etcd://host:port[/prefix] or file:///path (one-machine mode).",
    )
    secret_key: SecretStr = Field(
        SecretStr("change-me-in-production-please"),
        min_length=16,
        description="Key sealing token signing keys. Keep it secret and stable.",
    )
    cluster_secret: SecretStr = Field(
        SecretStr("change-me-cluster-secret"),
        min_length=8,
        description="Shared secret authenticating agents and the storage proxy to the manager.",
    )
    cookie_secure: bool = Field(
        False, description="Set the Secure flag on the web session cookie."
    )
    web_session_ttl_s: int = Field(8 * 3600, ge=60, description="Web login session lifetime.")
    signature_window_s: int = Field(
        300, ge=10, description="Accepted clock skew for HMAC-signed requests (each way)."
    )
    auth_cache_ttl_s: float = Field(
        2.0,
        ge=0,
        description="Seconds a resolved bearer token is reused without a database lookup (0 "
        "disables). Revocations through another replica take effect within this time.",
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted JSON body.")
    default_page_size: int = Field(50, ge=1, le=1000, description="List page size when unset.")
    agent_lost_after_s: float = Field(
        20.0,
        gt=0,
        description="An agent whose heartbeat is older than this is marked lost. Detection "
        "takes up to this plus the liveness interval (5 s) plus one heartbeat (3 s).",
    )
    web_ui_dir: str | None = Field(
        None, description="Directory with the built web UI bundle served at `/` (None: built-in)."
    )
    loops: list[str] | None = Field(
        None,
        description="Background loops to run in this process (None: all of them; []: none). "
        "Names: schedule, dispatch, terminate, liveness, reap, timeouts, idle, gauges, vfolders.",
    )
    log_json: bool = Field(True, description="Write structured JSON logs (else key=value text).")
    log_level: str = Field("INFO", description="Python logging level name.")
    storage_proxy_url: str | None = Field(
        None,
        description="Base URL of the storage proxy's internal API (authenticated with "
        "cluster_secret). None: discovered from storage-proxies/ when config_store_url is "
        "etcd://, else no virtual folders.",
    )
    storage_proxy_name: str | None = Field(
        None,
        description="Which registered storage proxy to use (storage-proxies/<name>) when "
        "discovering; None: the first registered name.",
    )
    storage_token_secret: SecretStr = Field(
        SecretStr(""),
        description="Key signing the storage proxy's public tokens (its token_secret).",
    )

    @model_validator(mode="after")
    def _workers_need_a_shared_bus(self) -> ManagerConfig:
        if self.workers > 1 and self.loops != [] and self.redis_url.startswith("local:"):
            raise ValueError(
                "workers > 1 needs a redis:// redis_url: a session created on one worker "
                "wakes the scheduler on worker 0 through the event bus (local:// is per process)"
            )
        return self

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> ManagerConfig:
        """Read TOML (if given); env vars win over the file, overrides win over both."""
        file_values: dict[str, Any] = {}
        if path is not None:
            file_values = tomllib.loads(Path(path).read_text())
        env_values = cls().model_dump(exclude_unset=True)  # only what env set explicitly
        merged = {**file_values, **env_values, **overrides}
        return cls.model_validate(merged)

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets masked, for `check-config` and logs."""
        out = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            if field.annotation is SecretStr or "SecretStr" in str(field.annotation):
                out[name] = "**********"
        return out
