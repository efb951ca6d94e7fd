"""The README's first command, for real: `berth up` starts Berth on this machine with embedded
PostgreSQL, prints a URL and an admin token that work, stops cleanly on Ctrl-C, and a second
`berth up` reuses the data."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.live import free_port

pytestmark = pytest.mark.slow


def _request(method: str, url: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _start(data_dir: Path, port: int, home: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "client.cli.main",
            "up",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--fake-gpus",
            "2",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("berth up exited early:\n" + "".join(lines))
        lines.append(line)
        if m := re.search(r"Berth is up at (\S+)", line):
            seen["url"] = m.group(1)
        if m := re.search(r"admin token: (\S+)", line):
            seen["token"] = m.group(1)
        if "Press Ctrl-C" in line:
            return proc, seen
    proc.kill()
    raise AssertionError("berth up did not finish starting:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=60)


def test_berth_up_serves_the_api_and_restarts_on_the_same_data(tmp_path: Path) -> None:
    data_dir, home, port = tmp_path / "data", tmp_path / "home", free_port()
    proc, seen = _start(data_dir, port, home)
    try:
        url, token = seen["url"], seen["token"]
        assert url == f"http://127.0.0.1:{port}"
        status, project = _request("POST", f"{url}/api/v1/projects", token, {"name": "vision"})
        assert status == 201, project
        status, user = _request(
            "POST", f"{url}/api/v1/users", token, {"username": "alice", "password": "pw-12345678"}
        )
        assert status == 201, user
        status, session = _request(
            "POST",
            f"{url}/api/v1/sessions",
            token,
            {
                "image": "berth/busybox:test",
                "command": ["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                "resources": {"cpu": 1, "mem": "64m", "cuda.device": 1},
            },
        )
        assert status == 201, session
        deadline = time.monotonic() + 60
        while session["status"] not in ("terminated", "error"):
            assert time.monotonic() < deadline, session
            time.sleep(0.3)
            _, session = _request("GET", f"{url}/api/v1/sessions/{session['id']}", token)
        assert session["result"] == "success", session
        config = (home / ".config" / "berth" / "config.toml").read_text()
        assert token in config and url in config
    finally:
        assert _stop(proc) == 0
    with pytest.raises(urllib.error.URLError):  # Ctrl-C stopped the manager too
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
    proc, seen = _start(data_dir, port, home)
    try:
        status, page = _request("GET", f"{seen['url']}/api/v1/projects?name=vision", seen["token"])
        assert status == 200
        assert [p["name"] for p in page["items"]] == ["vision"]
    finally:
        assert _stop(proc) == 0
