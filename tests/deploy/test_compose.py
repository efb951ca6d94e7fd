"""docker-compose.yml is valid for Docker Compose and keeps the deployment's safety rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
BERTH_SERVICES = {"manager", "manager-migrate", "storage-proxy", "agent"}
ONE_SHOT = {"manager-migrate"}
CONDITIONS = {"service_healthy", "service_completed_successfully"}


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        raise RuntimeError("docker-compose is missing: scripts/test-services installs it")
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as Compose resolves it (anchors merged, variables substituted)."""
    result = compose("config")
    assert result.returncode == 0, result.stderr
    loaded = yaml.safe_load(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


def mounts(service: dict[str, Any]) -> list[str]:
    return [v if isinstance(v, str) else str(v.get("source")) for v in service.get("volumes", [])]


class TestComposeFile:
    def test_compose_accepts_the_file(self) -> None:
        result = compose("config", "-q")
        assert result.returncode == 0, result.stderr

    def test_it_describes_the_whole_deployment(self, config: dict[str, Any]) -> None:
        expected = {"postgres", "redis", "etcd", *BERTH_SERVICES}
        assert set(config["services"]) == expected

    def test_every_service_is_health_checked_or_runs_once(self, config: dict[str, Any]) -> None:
        for name, service in config["services"].items():
            if name in ONE_SHOT:
                assert service.get("restart") == "no", name
                continue
            test = service.get("healthcheck", {}).get("test")
            assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"

    def test_dependencies_wait_for_health_not_just_start(self, config: dict[str, Any]) -> None:
        for name, service in config["services"].items():
            depends = service.get("depends_on", {})
            assert isinstance(depends, dict), f"{name}: depends_on without conditions"
            for target, spec in depends.items():
                assert spec.get("condition") in CONDITIONS, f"{name} -> {target}"
                target_service = config["services"][target]
                if spec["condition"] == "service_healthy":
                    assert "healthcheck" in target_service, f"{target} cannot become healthy"
                else:
                    assert target in ONE_SHOT

    def test_published_ports_bind_to_loopback_only(self, config: dict[str, Any]) -> None:
        published = []
        for name, service in config["services"].items():
            for port in service.get("ports", []):
                text = port if isinstance(port, str) else f"{port.get('host_ip')}:{port}"
                assert text.startswith("127.0.0.1:"), f"{name} publishes {port!r} beyond loopback"
                published.append(name)
        assert sorted(published) == ["manager", "storage-proxy"]

    def test_only_the_agent_gets_the_docker_socket(self, config: dict[str, Any]) -> None:
        holders = [
            name
            for name, service in config["services"].items()
            if any("docker.sock" in m for m in mounts(service))
        ]
        assert holders == ["agent"]
        for name, service in config["services"].items():
            assert not service.get("privileged"), name
            assert service.get("network_mode") != "host", name
            assert service.get("pid") != "host", name

    def test_berth_services_share_one_image_and_differ_by_command(
        self, config: dict[str, Any]
    ) -> None:
        services = config["services"]
        images = {services[name]["image"] for name in BERTH_SERVICES}
        assert images == {"berth/berth:dev"}
        commands = {name: services[name]["command"] for name in BERTH_SERVICES}
        assert commands == {
            "manager": ["berth", "manager", "serve"],
            "manager-migrate": ["berth", "manager", "migrate"],
            "storage-proxy": ["berth", "storage-proxy", "serve"],
            "agent": ["berth", "agent", "serve"],
        }

    def test_connection_settings_agree_across_services(self, config: dict[str, Any]) -> None:
        env = {name: s.get("environment", {}) for name, s in config["services"].items()}
        assert env["manager"]["BERTH_DB_URL"].startswith("postgresql+asyncpg://berth:")
        assert env["manager"]["BERTH_DB_URL"].endswith("@postgres:5432/berth")
        assert env["manager"]["BERTH_REDIS_URL"] == "redis://redis:6379/0"
        assert env["manager"]["BERTH_CONFIG_STORE_URL"] == "etcd://etcd:2379/berth"
        # The manager discovers the storage proxy in etcd, where the proxy registers itself.
        assert "BERTH_STORAGE_PROXY_URL" not in env["manager"]
        proxy = env["storage-proxy"]
        assert proxy["BERTH_STORAGE_CONFIG_STORE_URL"] == env["manager"]["BERTH_CONFIG_STORE_URL"]
        assert proxy["BERTH_STORAGE_ADVERTISED_INTERNAL_URL"] == "http://storage-proxy:6022"
        assert proxy["BERTH_STORAGE_TOKEN_SECRET"] == env["manager"]["BERTH_STORAGE_TOKEN_SECRET"]
        assert env["manager-migrate"] == env["manager"]
        assert env["agent"]["BERTH_AGENT_MANAGER_URL"] == "http://manager:8080"
        secrets = {
            env["manager"]["BERTH_CLUSTER_SECRET"],
            env["agent"]["BERTH_AGENT_CLUSTER_SECRET"],
            env["storage-proxy"]["BERTH_STORAGE_CLUSTER_SECRET"],
        }
        assert len(secrets) == 1
        assert env["agent"]["BERTH_AGENT_RUNTIME"] == "docker"
        assert env["agent"]["BERTH_AGENT_DEVICE_PLUGINS"] == '["fake"]'

    def test_secrets_and_data_dir_come_from_the_environment(self, tmp_path: Path) -> None:
        result = compose(
            "config",
            env={
                "PATH": "/usr/bin:/bin",
                "BERTH_CLUSTER_SECRET": "s3cret-from-env",
                "BERTH_DATA_DIR": str(tmp_path),
            },
        )
        assert result.returncode == 0, result.stderr
        services = yaml.safe_load(result.stdout)["services"]
        assert services["agent"]["environment"]["BERTH_AGENT_CLUSTER_SECRET"] == "s3cret-from-env"
        assert services["manager"]["environment"]["BERTH_CLUSTER_SECRET"] == "s3cret-from-env"
        # Data paths are mounted at the same path inside, so the host engine can bind them.
        assert f"{tmp_path}:{tmp_path}:rw" in mounts(services["agent"])
