"""The web UI end to end: a real manager process, the bundle built by scripts/build-web-ui, and
tests/webui/run.mjs driving headless Chromium (Debian's) through the scenarios."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from manager.config import ManagerConfig
from tests.live import berth_process, free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BERTH_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "test-results" / "webui"


@dataclass
class Stack:
    url: str
    token: str
    username: str
    password: str
    log_path: Path


def _require_tools() -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    if missing:
        pytest.skip(
            "the browser test needs Node.js and Debian's chromium "
            f"(apt-get install -y nodejs npm chromium); missing: {', '.join(missing)}"
        )


@pytest.fixture(scope="module")
def bundle() -> Path:
    _require_tools()
    done = subprocess.run(
        [str(REPO / "scripts" / "build-web-ui")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dist = REPO / "web_ui" / "dist"
    assert (dist / "index.html").is_file()
    return dist


@pytest.fixture
def stack(manager_config: ManagerConfig, tmp_path: Path, bundle: Path) -> Iterator[Stack]:
    """The real manager process on the test database, with a fresh superadmin that has a
    password. (`berth up --fake-gpus 2` is the target once its agent starts here; the scenarios
    that need nodes or sessions report "NOT RUN" while the manager lacks those routes.)"""
    port = free_port()
    env = {
        "BERTH_DB_URL": manager_config.db_url.get_secret_value(),
        "BERTH_SECRET_KEY": manager_config.secret_key.get_secret_value(),
        "BERTH_CLUSTER_SECRET": manager_config.cluster_secret.get_secret_value(),
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_LOG_LEVEL": "INFO",
        "BERTH_LOG_JSON": "false",
    }
    username, password = f"webui-admin-{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    args = ["manager", "create-admin", "--username", username, "--password", password]
    created = subprocess.run(
        [sys.executable, "-m", "client.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "manager.log"
    with berth_process(
        ["manager", "serve"], env=env, log_path=log_path, ready_url=url + "/readyz"
    ):
        yield Stack(url, token, username, password, log_path)


def test_web_ui_scenarios_in_a_real_browser(stack: Stack, bundle: Path) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["node", str(REPO / "tests" / "webui" / "run.mjs")],
        env={
            **os.environ,
            "BERTH_URL": stack.url,
            "BERTH_ADMIN_TOKEN": stack.token,
            "BERTH_ADMIN_USER": stack.username,
            "BERTH_ADMIN_PASSWORD": stack.password,
            "BERTH_UI_DIST": str(bundle),
            "BERTH_SCREENSHOTS": str(SCREENSHOTS),
            "CHROMIUM": CHROMIUM,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = done.stdout + done.stderr
    manager_log = stack.log_path.read_text()
    assert done.returncode == 0, report + "\n--- manager log ---\n" + manager_log
    assert "PASS admin creates a project and a user" in report, report
    assert "unhandled error" not in manager_log, manager_log[-4000:]
    assert (SCREENSHOTS / "02-dashboard.png").stat().st_size > 1000
