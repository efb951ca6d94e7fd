"""Property-based fuzzing of the whole public API from its own OpenAPI document: schemathesis
generates valid and invalid requests for every operation; none may produce a 5xx."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from manager.config import ManagerConfig
from manager.db.models import UserRole
from tests.factories import World
from tests.live import berth_process, free_port


async def test_schemathesis_finds_no_server_errors(
    world: World, manager_config: ManagerConfig, tmp_path: Path
) -> None:
    admin = await world.actor(await world.domain(), role=UserRole.SUPERADMIN)
    port = free_port()
    env = {
        "BERTH_DB_URL": manager_config.db_url.get_secret_value(),
        "BERTH_SECRET_KEY": manager_config.secret_key.get_secret_value(),
        "BERTH_CLUSTER_SECRET": manager_config.cluster_secret.get_secret_value(),
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    with berth_process(
        ["manager", "serve"],
        env=env,
        log_path=tmp_path / "manager.log",
        ready_url=base + "/readyz",
    ):
        result = _run_schemathesis(base, admin.token)
    log = (tmp_path / "manager.log").read_text()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "unhandled error" not in log
    assert " generated, " in result.stdout and " passed" in result.stdout


def _run_schemathesis(base: str, token: str) -> Any:
    st = Path(sys.executable).with_name("schemathesis")
    return subprocess.run(
        [
            str(st),
            "run",
            f"{base}/api/v1/openapi.json",
            "--url",
            base,
            "--checks",
            "not_a_server_error",
            "--max-examples",
            os.environ.get("BERTH_SCHEMATHESIS_EXAMPLES", "20"),
            "--header",
            f"Authorization: Bearer {token}",
            "--seed",
            "1",
            "--no-color",
            "--request-timeout",
            "10",
            "--exclude-path",
            "/api/v1/auth/logout",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
