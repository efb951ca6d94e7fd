"""The CI journey with data, all through the `berth` CLI against a real stack with a storage
proxy: create a folder, upload a file, run a job that reads it from a mount and writes a result,
download the result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _berth(stack: Stack, home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_")}
    env |= {"XDG_CONFIG_HOME": str(home), "BERTH_ENDPOINT": stack.url, "BERTH_TOKEN": stack.token}
    return subprocess.run(
        [sys.executable, "-m", "client.cli.main", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_upload_mount_read_write_download(vstack: Stack, tmp_path: Path) -> None:
    home = tmp_path / "xdg"
    home.mkdir()
    data = tmp_path / "input.txt"
    data.write_text("dataset line 1\ndataset line 2\n")

    created = _berth(vstack, home, "vf", "create", "ci-data", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    uploaded = _berth(
        vstack, home, "vf", "upload", "ci-data", str(data), "in/input.txt", cwd=tmp_path
    )
    assert uploaded.returncode == 0, uploaded.stderr

    job = _berth(
        vstack,
        home,
        "run",
        "--image",
        "berth/busybox:test",
        "-r",
        "cpu=0.5",
        "-r",
        "mem=64m",
        "--mount",
        "ci-data:/data",
        "--",
        "sh",
        "-c",
        "cat /data/in/input.txt && wc -l < /data/in/input.txt > /data/result.txt",
        cwd=tmp_path,
    )
    assert job.returncode == 0, job.stdout + job.stderr
    assert "dataset line 2" in job.stdout

    readonly = _berth(
        vstack,
        home,
        "run",
        "--image",
        "berth/busybox:test",
        "-r",
        "cpu=0.5",
        "-r",
        "mem=64m",
        "--mount",
        "ci-data:/data:ro",
        "--",
        "sh",
        "-c",
        "echo x > /data/nope.txt",
        cwd=tmp_path,
    )
    assert readonly.returncode != 0, "a read-only mount must refuse writes"

    fetched = _berth(
        vstack,
        home,
        "vf",
        "download",
        "ci-data",
        "result.txt",
        str(tmp_path / "result.txt"),
        cwd=tmp_path,
    )
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "result.txt").read_text().strip() == "2"
    listing = _berth(vstack, home, "vf", "files", "ci-data", "-o", "json", cwd=tmp_path)
    assert listing.returncode == 0 and "nope.txt" not in listing.stdout
