"""The CLI runs as a subprocess against a real stack (tests/e2e/conftest.py): a manager with its
loops and an agent with 4 fake GPUs on the real Docker engine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack, stack, stack_db  # noqa: F401

IMAGE = "berth/busybox:test"
SMALL = ["-r", "cpu=0.5", "-r", "mem=64m"]


@dataclass
class Berth:
    """Runs `python -m client.cli.main ...` with its own config directory."""

    env: dict[str, str]
    home: Path

    def __call__(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "client.cli.main", *args],
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def client_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env.update(
        {"XDG_CONFIG_HOME": str(home), "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb", **extra}
    )
    return env


@pytest.fixture
def berth(stack: Stack, tmp_path: Path) -> Iterator[Berth]:  # noqa: F811
    home = tmp_path / "xdg"
    home.mkdir()
    yield Berth(env=client_env(home, BERTH_ENDPOINT=stack.url, BERTH_TOKEN=stack.token), home=home)
