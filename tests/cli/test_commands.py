"""Read commands, admin commands, login, and the exit codes for bad input."""

from __future__ import annotations

import json
import stat
import uuid

import pytest
import yaml

from tests.cli.conftest import IMAGE, SMALL, Berth, client_env
from tests.e2e.conftest import Stack
from tests.live import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_ps_lists_sessions_as_json_yaml_and_a_narrow_table(berth: Berth) -> None:
    name = f"ps-{uuid.uuid4().hex[:6]}"
    done = berth("run", "--name", name, "-q", "--image", IMAGE, *SMALL, "--", "true")
    assert done.returncode == 0, done.stderr
    listed = berth("ps", "--all", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)
    mine = next(s for s in sessions if s["name"] == name)
    assert (mine["status"], mine["result"], mine["exit_code"]) == ("terminated", "success", 0)
    assert name not in {s["name"] for s in json.loads(berth("ps", "-o", "json").stdout)}
    as_yaml = yaml.safe_load(berth("ps", "--all", "-o", "yaml").stdout)
    assert name in {s["name"] for s in as_yaml}
    table = berth("ps", "--all").stdout
    assert name in table and "STATUS" in table
    assert max(len(line) for line in table.splitlines()) <= 80


def test_admin_nodes_lists_the_node_with_its_gpus(berth: Berth, stack: Stack) -> None:
    node_id = next(iter(stack.agents))
    table = berth("admin", "nodes")
    assert table.returncode == 0, table.stderr
    assert node_id in table.stdout and "cuda" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    nodes = json.loads(berth("admin", "nodes", "ls", "-o", "json").stdout)
    node = next(n for n in nodes if n["id"] == node_id)
    assert node["capacity"]["cuda.device"] == "4"
    detail = berth("admin", "nodes", "get", node_id)
    assert detail.stdout.count("fake-cuda") >= 4 or detail.stdout.count("cuda.device") >= 4
    cordoned = json.loads(berth("admin", "nodes", "cordon", node_id, "-o", "json").stdout)
    assert cordoned["cordoned"] is True
    back = json.loads(berth("admin", "nodes", "uncordon", node_id, "-o", "json").stdout)
    assert back["cordoned"] is False


def test_admin_tenancy_commands_create_a_user_with_a_working_token(berth: Berth) -> None:
    name = f"cli-user-{uuid.uuid4().hex[:6]}"
    created = berth("admin", "users", "create", name, "--project", "default", "-o", "json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["username"] == name
    members = json.loads(berth("admin", "projects", "members", "default", "-o", "json").stdout)
    assert name in {m["username"] for m in members}
    token = berth("admin", "tokens", "create", "--user", name, "--name", "ci")
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip()
    whoami = berth("whoami", "-o", "json", env={"BERTH_TOKEN": secret})
    assert json.loads(whoami.stdout)["user"]["username"] == name
    forbidden = berth("admin", "quotas", "set", "project", "default", "-s", "cpu=1",
                      env={"BERTH_TOKEN": secret})  # fmt: skip
    assert forbidden.returncode == 77, forbidden.stderr


def test_usage_reports_gpu_hours_per_project(berth: Berth) -> None:
    job = berth("run", "-q", "--gpus", "1", "--image", IMAGE, *SMALL, "--", "sleep", "1")
    assert job.returncode == 0, job.stderr
    report = json.loads(berth("admin", "usage", "--since", "1h", "-o", "json").stdout)
    line = next(i for i in report["items"] if i["name"] == "default")
    assert float(line["gpu_hours"]["cuda.device"]) > 0
    table = berth("admin", "usage", "--since", "1h", "--by", "user")
    assert table.returncode == 0 and "GPU-HOURS" in table.stdout


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["run", "--image", IMAGE, "-r", "cpu", "--", "true"], 64, "SLOT=AMOUNT"),
        (["run", "--image", IMAGE, "--timeout", "soon", "--", "true"], 64, "duration"),
        (["run", "--bogus-option", "--", "true"], 64, "No such option"),
        (["run", "--image", "bad image!", "--", "true"], 65, "image"),
        (["run", "--image", IMAGE, "-r", "tpu.device=1", "--", "true"], 65, "unknown_slot"),
        (["run", "--image", IMAGE, "--mount", "nofolder", "--", "true"], 64, "--mount"),
        (["get", "no-such-session"], 66, "not_found"),
        (["admin", "quotas", "set", "galaxy", "x"], 64, "kind"),
    ],
)
def test_bad_input_exits_with_the_documented_code(
    berth: Berth, args: list[str], code: int, text: str
) -> None:
    result = berth(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert text in result.stderr


def test_auth_config_and_connection_errors_have_their_codes(berth: Berth, stack: Stack) -> None:
    assert berth("ps", env={"BERTH_TOKEN": "not-a-token"}).returncode == 77
    no_token = {k: v for k, v in berth.env.items() if k != "BERTH_TOKEN"}
    assert Berth(env=no_token, home=berth.home)("ps").returncode == 78
    down = berth("ps", env={"BERTH_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    assert down.returncode == 69 and "cannot reach" in down.stderr
    (berth.home / "berth").mkdir(exist_ok=True)
    (berth.home / "berth" / "config.toml").write_text("endpoint = [unclosed")
    assert berth("ps").returncode == 78


def test_login_verifies_and_saves_a_private_config(stack: Stack, tmp_path: object) -> None:
    from pathlib import Path

    home = Path(str(tmp_path)) / "login-home"
    home.mkdir()
    bare = Berth(env=client_env(home), home=home)
    bad = bare("login", "--endpoint", stack.url, "--token", "wrong")
    assert bad.returncode == 77
    assert not (home / "berth" / "config.toml").exists()
    good = bare("login", "--endpoint", stack.url, "--token", stack.token)
    assert good.returncode == 0, good.stderr
    path = home / "berth" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert bare("ps", "-o", "json").returncode == 0, "the saved config is used"
    from_env = Berth(
        env=client_env(home, BERTH_ENDPOINT=stack.url, BERTH_TOKEN=stack.token), home=home
    )
    path.unlink()
    assert from_env("login").returncode == 0 and path.exists()
