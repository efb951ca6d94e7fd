"""Client configuration: ~/.config/berth/config.toml, overridden by BERTH_ENDPOINT and
BERTH_TOKEN."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "berth" / "config.toml"


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    token: str | None

    @classmethod
    def load(cls, path: Path | None = None) -> ClientConfig:
        path = path or config_path()
        data: dict[str, str] = {}
        if path.exists():
            data = tomllib.loads(path.read_text())
        endpoint = (
            os.environ.get("BERTH_ENDPOINT") or data.get("endpoint") or "http://127.0.0.1:8080"
        )
        token = os.environ.get("BERTH_TOKEN") or data.get("token")
        return cls(endpoint=endpoint.rstrip("/"), token=token)

    def save(self, path: Path | None = None) -> Path:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f'endpoint = "{self.endpoint}"']
        if self.token:
            lines.append(f'token = "{self.token}"')
        # The token is a credential: the file is private to its owner.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        return path
