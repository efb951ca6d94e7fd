"""Client configuration: ~/.config/berth/config.toml, overridden by BERTH_ENDPOINT, BERTH_TOKEN
and BERTH_GPU_SLOT."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_GPU_SLOT = "cuda.device"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "berth" / "config.toml"


@dataclass(frozen=True)
class ClientConfig:
    endpoint: str
    token: str | None
    # The slot `berth run --gpus N` asks for (e.g. rocm.device on an AMD cluster).
    gpu_slot: str = DEFAULT_GPU_SLOT

    @classmethod
    def load(cls, path: Path | None = None) -> ClientConfig:
        path = path or config_path()
        data: dict[str, str] = {}
        if path.exists():
            data = tomllib.loads(path.read_text())
        endpoint = os.environ.get("BERTH_ENDPOINT") or data.get("endpoint") or DEFAULT_ENDPOINT
        token = os.environ.get("BERTH_TOKEN") or data.get("token")
        gpu_slot = os.environ.get("BERTH_GPU_SLOT") or data.get("gpu_slot") or DEFAULT_GPU_SLOT
        return cls(endpoint=endpoint.rstrip("/"), token=token, gpu_slot=gpu_slot)

    def save(self, path: Path | None = None) -> Path:
        path = path or config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # json.dumps writes a valid TOML basic string (quotes and backslashes escaped).
        lines = [f"endpoint = {json.dumps(self.endpoint)}"]
        if self.token:
            lines.append(f"token = {json.dumps(self.token)}")
        if self.gpu_slot != DEFAULT_GPU_SLOT:
            lines.append(f"gpu_slot = {json.dumps(self.gpu_slot)}")
        # The token is a credential: the file is private to its owner.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
        return path
