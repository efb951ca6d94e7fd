"""AgentConfig: TOML file, BERTH_AGENT_* environment, validation."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.config import AgentConfig


def test_toml_then_env_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        'node_id = "gpu-07"\n'
        'runtime = "process"\n'
        'port_range = "31000-31010"\n'
        'device_plugins = ["fake", "npu:gaudi"]\n'
        "reserved_cpu = 1\n"
        '[device_options.fake]\ncount = 8\nkind = "cuda"\n'
    )
    monkeypatch.setenv("BERTH_AGENT_RESOURCE_GROUP", "h100")
    monkeypatch.setenv("BERTH_AGENT_CLUSTER_SECRET", "from-env")
    config = AgentConfig.load(path, listen_port=7000)
    assert config.node_id == "gpu-07"
    assert config.runtime == "process"
    assert config.port_range == (31000, 31010)
    assert config.device_options["fake"] == {"count": 8, "kind": "cuda"}
    assert config.reserved_cpu == Decimal(1)
    assert config.resource_group == "h100"
    assert config.cluster_secret.get_secret_value() == "from-env"
    assert config.listen_port == 7000
    assert "from-env" not in repr(config)


def test_defaults_and_documentation() -> None:
    config = AgentConfig(node_id="n1")
    assert config.heartbeat_interval_s == 3
    assert config.host_ip == "127.0.0.1"
    assert config.resource_group == "default"
    assert config.public_url == "http://127.0.0.1:6011"
    assert all(field.description for field in AgentConfig.model_fields.values())


@pytest.mark.parametrize(
    "overrides",
    [
        {"port_range": "31000"},
        {"port_range": "31010-31000"},
        {"allowed_mount_roots": ["relative/path"]},
        {"runtime": "podman"},
        {"node_id": "bad id"},
        {"unknown_option": 1},
    ],
)
def test_invalid_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AgentConfig(**{"node_id": "n1", **overrides})  # type: ignore[arg-type]


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="agent config file not found"):
        AgentConfig.load(tmp_path / "absent.toml")
