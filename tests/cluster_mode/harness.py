"""A namespaced Berth cluster on one machine: two managers, three agents, a storage proxy.

Network layout (MACHINE.md's network rule: no traffic from the root namespace to a namespace
address; the test subnet is made unreachable in the root namespace first):

    root namespace          ip route add unreachable 10.123.<n>.0/24
      test process  ──unix socket──▶ socat (in ctl) ──TCP──▶ manager 1/2, storage proxy, etcd
    "ctl" namespace         bridge 10.123.<n>.1: PostgreSQL (private cluster), Redis, etcd,
                            manager 1 (:8081), manager 2 (:8082), storage proxy (:6021/:6022)
    "a<i>" namespaces       veth on the ctl bridge, 10.123.<n>.1<i>: one agent each (:6011)

Agents reach etcd and the managers over the bridge; managers reach agents the same way. The test
process never sends a packet to the subnet: it talks to unix sockets that socat forwarders
(running inside the ctl namespace) connect onwards. Processes enter a namespace with
`nsenter --net=…` (unlike `ip netns exec` it keeps the host's /sys, so cgroups stay visible).

Every agent uses the shared Docker engine through its unix socket, except the node given
`private_docker_node`: it gets its own dockerd started inside its namespace (own data root,
exec root and a docker0 bridge that exists only in that namespace), so the engine-restart test
never touches the shared engine. PostgreSQL, Redis and etcd are private instances of this
cluster because the fault tests stop and restart them.

`scripts/cluster-harness start|stop` (tests/cluster_mode/harness_cli.py) runs it by hand.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SECRET = "cluster-mode-secret-7f3a9c"
SECRET_KEY = "cluster-mode-secret-key-0123456789"
STORAGE_TOKEN_SECRET = "cluster-mode-token-secret-55"
IMAGE = "berth/busybox:test"
PG_VERSION = "15"
MANAGER_PORTS = (8081, 8082)
AGENT_PORT = 6011
ETCD_PORT, ETCD_PEER_PORT, REDIS_PORT = 2379, 2380, 6379
PROXY_PUBLIC_PORT, PROXY_INTERNAL_PORT = 6021, 6022


def sh(*args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, **kw)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return out


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, httpx.HTTPError, subprocess.SubprocessError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready within {timeout_s}s")


@dataclass
class Proc:
    """A long-running process inside a network namespace, restartable with the same command."""

    name: str
    netns: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{self.netns}", *self.argv],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait()

    def stop(self, timeout_s: float = 10) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill9()

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""


@dataclass
class Cluster:
    workdir: Path
    agents: int = 3
    lost_after_s: float = 6.0
    private_docker_node: int | None = 3
    gpus_per_node: int = 2
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str = ""
    subnet: int = 0
    pg_port: int = 0
    _namespaces: list[str] = field(default_factory=list)
    _route: str | None = None
    _pg_cluster: str | None = None

    # ---- names and addresses ----
    @property
    def ctl(self) -> str:
        return f"bc{self.id}c"

    def agent_ns(self, i: int) -> str:
        return f"bc{self.id}a{i}"

    def ip(self, host: int) -> str:
        return f"10.123.{self.subnet}.{host}"

    @property
    def ctl_ip(self) -> str:
        return self.ip(1)

    def agent_ip(self, i: int) -> str:
        return self.ip(10 + i)

    def node_id(self, i: int) -> str:
        return f"bc{self.id}-node{i}"

    @property
    def rundir(self) -> Path:  # short: unix socket paths are limited to 108 bytes
        return Path(f"/run/bc-{self.id}")

    @property
    def prefix(self) -> str:
        return f"bc{self.id}"

    @property
    def db_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/berth"

    @property
    def etcd_url(self) -> str:
        return f"etcd://{self.ctl_ip}:{ETCD_PORT}/{self.prefix}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{REDIS_PORT}/0?prefix={self.prefix}"

    def socket(self, name: str) -> str:
        return str(self.rundir / f"{name}.sock")

    def docker_host(self, i: int) -> str:
        if i == self.private_docker_node:
            return f"unix://{self.rundir}/docker{i}.sock"
        return os.environ["DOCKER_HOST"]

    def manager_env(self, m: int) -> dict[str, str]:
        port = MANAGER_PORTS[m - 1]
        return {
            "BERTH_DB_URL": self.db_url,
            "BERTH_SECRET_KEY": SECRET_KEY,
            "BERTH_CLUSTER_SECRET": CLUSTER_SECRET,
            "BERTH_LISTEN_HOST": self.ctl_ip,
            "BERTH_LISTEN_PORT": str(port),
            "BERTH_PUBLIC_URL": f"http://{self.ctl_ip}:{port}",
            "BERTH_REDIS_URL": self.redis_url,
            "BERTH_CONFIG_STORE_URL": f"etcd://127.0.0.1:{ETCD_PORT}/{self.prefix}",
            "BERTH_LOG_JSON": "false",
            "BERTH_AGENT_LOST_AFTER_S": str(self.lost_after_s),
            "BERTH_STORAGE_TOKEN_SECRET": STORAGE_TOKEN_SECRET,
        }

    # ---- lifecycle ----
    def start(self) -> Cluster:
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.workdir.chmod(0o755)  # the private PostgreSQL runs as `postgres`
            self.rundir.mkdir(parents=True, exist_ok=True)
            self._network()
            self._postgres()
            self._redis().start()
            self._etcd().start()
            self._wait_etcd()
            self._forward("etcd", f"127.0.0.1:{ETCD_PORT}")
            self._migrate_and_admin()
            for m in (1, 2):
                self.manager(m).start()
                self._forward(f"m{m}", f"{self.ctl_ip}:{MANAGER_PORTS[m - 1]}")
            for m in (1, 2):
                self.wait_manager(m)
            self._storage_proxy().start()
            self._forward("proxy", f"{self.ctl_ip}:{PROXY_PUBLIC_PORT}")
            wait_until(self.proxy_registered, timeout_s=30, what="storage proxy in etcd")
            if self.private_docker_node is not None:
                self.start_private_docker()
            for i in range(1, self.agents + 1):
                self.agent(i).start()
            self.wait_agents_alive(range(1, self.agents + 1), timeout_s=60)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop(timeout_s=5)
        try:
            self._remove_containers()
        except (OSError, subprocess.SubprocessError, KeyError) as exc:
            print(f"cluster harness: could not remove containers: {exc!r}", file=sys.stderr)
        if self._pg_cluster:
            sh("pg_dropcluster", "--stop", PG_VERSION, self._pg_cluster, check=False)
            shutil.rmtree(f"/etc/postgresql/{PG_VERSION}/{self._pg_cluster}", ignore_errors=True)
            self._pg_cluster = None
        for ns in self._namespaces:
            sh("ip", "netns", "del", ns, check=False)
        self._namespaces = []
        if self._route:
            sh("ip", "route", "del", "unreachable", self._route, check=False)
            self._route = None
        shutil.rmtree(self.rundir, ignore_errors=True)

    def _network(self) -> None:
        used = sh("ip", "route").stdout
        free = [n for n in range(2, 250) if f"10.123.{n}." not in used]
        self.subnet = random.choice(free)
        self._route = f"10.123.{self.subnet}.0/24"
        sh("ip", "route", "add", "unreachable", self._route)  # before any namespace exists
        sh("ip", "netns", "add", self.ctl)
        self._namespaces.append(self.ctl)
        bridge = f"bc{self.id}br"
        for cmd in (
            ["link", "set", "lo", "up"],
            ["link", "add", bridge, "type", "bridge"],
            ["addr", "add", f"{self.ctl_ip}/24", "dev", bridge],
            ["link", "set", bridge, "up"],
        ):
            sh("ip", "-n", self.ctl, *cmd)
        for i in range(1, self.agents + 1):
            ns, inner, outer = self.agent_ns(i), f"bc{self.id}v{i}a", f"bc{self.id}v{i}b"
            sh("ip", "netns", "add", ns)
            self._namespaces.append(ns)
            sh("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
            sh("ip", "link", "set", inner, "netns", ns)
            sh("ip", "link", "set", outer, "netns", self.ctl)
            sh("ip", "-n", self.ctl, "link", "set", outer, "master", bridge, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.agent_ip(i)}/24", "dev", inner)
            sh("ip", "-n", ns, "link", "set", inner, "up")

    def _proc(
        self, name: str, netns: str, argv: list[str], env: dict[str, str] | None = None
    ) -> Proc:
        proc = Proc(name, netns, argv, env or {}, self.workdir / f"{name}.log")
        self.procs[name] = proc
        return proc

    def _postgres(self) -> None:
        self._pg_cluster = f"bc{self.id}"
        self.pg_port = _free_pg_port()
        sh(
            "pg_createcluster", PG_VERSION, self._pg_cluster, "-p", str(self.pg_port),
            "-d", str(self.workdir / "pg"), "-s", str(self.rundir), "--", "--auth=trust",
        )  # fmt: skip
        shutil.chown(self.rundir, "postgres")
        self.start_postgres()
        sh("psql", "-h", str(self.rundir), "-p", str(self.pg_port), "-U", "postgres",
           "-c", "CREATE DATABASE berth")  # fmt: skip

    def start_postgres(self) -> None:
        assert self._pg_cluster
        sh("nsenter", f"--net=/var/run/netns/{self.ctl}",
           "pg_ctlcluster", PG_VERSION, self._pg_cluster, "start")  # fmt: skip

    def stop_postgres(self) -> None:
        assert self._pg_cluster
        sh("pg_ctlcluster", PG_VERSION, self._pg_cluster, "stop", "-m", "fast")

    def pg_dsn(self) -> dict[str, Any]:
        """asyncpg connect() kwargs for the test process (unix socket, no network)."""
        return {
            "host": str(self.rundir),
            "port": self.pg_port,
            "user": "postgres",
            "database": "berth",
        }

    def _redis(self) -> Proc:
        return self._proc(
            "redis",
            self.ctl,
            ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
             "--appendonly", "no", "--unixsocket", self.socket("redis"),
             "--unixsocketperm", "600"],
        )  # fmt: skip

    def _etcd(self) -> Proc:
        return self._proc(
            "etcd",
            self.ctl,
            [
                "etcd", "--name", "default", "--data-dir", str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{ETCD_PORT},http://{self.ctl_ip}:{ETCD_PORT}",
                "--advertise-client-urls", f"http://{self.ctl_ip}:{ETCD_PORT}",
                "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PEER_PORT}",
                "--initial-cluster", f"default=http://127.0.0.1:{ETCD_PEER_PORT}",
            ],
        )  # fmt: skip

    def _wait_etcd(self) -> None:
        def healthy() -> bool:
            out = sh("nsenter", f"--net=/var/run/netns/{self.ctl}", "etcdctl",
                     f"--endpoints=127.0.0.1:{ETCD_PORT}", "endpoint", "health",
                     check=False)  # fmt: skip
            return out.returncode == 0

        wait_until(healthy, timeout_s=20, what="etcd")

    def _forward(self, name: str, target: str) -> None:
        """A unix socket in the run dir that reaches `target` inside the ctl namespace."""
        path = self.socket(name)
        self._proc(
            f"fwd-{name}",
            self.ctl,
            ["socat", f"UNIX-LISTEN:{path},fork,mode=600,unlink-early", f"TCP:{target}"],
        ).start()
        wait_until(lambda: Path(path).exists(), timeout_s=5, what=f"forwarder {name}")

    def etcd_local_port(self) -> int:
        """A 127.0.0.1 port in the root namespace forwarding to etcd (for aetcd in tests)."""
        proc = self.procs.get("fwd-etcd-tcp")
        if proc is None or not proc.running:
            port = _free_port()
            proc = Proc(
                "fwd-etcd-tcp",
                "",
                ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                 f"UNIX-CONNECT:{self.socket('etcd')}"],
                {},
                self.workdir / "fwd-etcd-tcp.log",
            )  # fmt: skip
            with open(proc.log_path, "ab") as log:  # root namespace: no nsenter
                proc.popen = subprocess.Popen(proc.argv, stdout=log, stderr=subprocess.STDOUT)
            proc.env = {"PORT": str(port)}
            self.procs[proc.name] = proc
            wait_until(lambda: _port_open(port), timeout_s=5, what="etcd tcp forwarder")
        return int(proc.env["PORT"])

    def _cli(self, *args: str, env: dict[str, str]) -> str:
        out = sh(
            "nsenter", f"--net=/var/run/netns/{self.ctl}",
            sys.executable, "-m", "client.cli.main", *args,
            env={**os.environ, **env}, cwd=REPO,
        )  # fmt: skip
        return out.stdout.strip()

    def _migrate_and_admin(self) -> None:
        env = self.manager_env(1)
        self._cli("manager", "migrate", env=env)
        self.token = self._cli("manager", "create-admin", "--username", "root-admin", env=env)
        self.token = self.token.splitlines()[-1].strip()

    def manager(self, m: int) -> Proc:
        name = f"manager{m}"
        if name not in self.procs:
            argv = [sys.executable, "-m", "client.cli.main", "manager", "serve"]
            self._proc(name, self.ctl, argv, self.manager_env(m))
        return self.procs[name]

    def wait_manager(self, m: int, timeout_s: float = 40) -> None:
        def ready() -> bool:
            with self.sync_client(m) as api:
                return api.get("/readyz").status_code == 200

        proc = self.manager(m)
        try:
            wait_until(ready, timeout_s=timeout_s, what=f"manager {m}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{proc.log()}") from None

    def _storage_proxy(self) -> Proc:
        root = self.workdir / "volumes" / "local"
        root.mkdir(parents=True, exist_ok=True)
        env = {
            "BERTH_STORAGE_INTERNAL_HOST": self.ctl_ip,
            "BERTH_STORAGE_INTERNAL_PORT": str(PROXY_INTERNAL_PORT),
            "BERTH_STORAGE_PUBLIC_HOST": self.ctl_ip,
            "BERTH_STORAGE_PUBLIC_PORT": str(PROXY_PUBLIC_PORT),
            "BERTH_STORAGE_CLUSTER_SECRET": CLUSTER_SECRET,
            "BERTH_STORAGE_NAME": "proxy1",  # managers find it in etcd: storage-proxies/proxy1
            "BERTH_STORAGE_CONFIG_STORE_URL": self.etcd_url,
            "BERTH_STORAGE_REGISTRATION_TTL_S": "4",
            "BERTH_STORAGE_TOKEN_SECRET": STORAGE_TOKEN_SECRET,
            "BERTH_STORAGE_VOLUMES": json.dumps(
                [{"name": "local", "backend": "posix", "options": {"root": str(root)}}]
            ),
        }
        argv = [sys.executable, "-m", "client.cli.main", "storage-proxy", "serve"]
        return self._proc("storage-proxy", self.ctl, argv, env)

    def proxy_registered(self) -> bool:
        """Whether storage-proxies/proxy1 is in etcd (managers find the proxy there)."""
        out = sh("nsenter", f"--net=/var/run/netns/{self.ctl}", "etcdctl",
                 f"--endpoints=127.0.0.1:{ETCD_PORT}", "get", "--print-value-only",
                 f"/{self.prefix}/storage-proxies/proxy1", check=False)  # fmt: skip
        return bool(out.stdout.strip())

    def start_private_docker(self) -> None:
        i = self.private_docker_node
        assert i is not None
        name = f"dockerd{i}"
        if name not in self.procs:
            data = self.workdir / f"docker{i}"
            data.mkdir(exist_ok=True)
            argv = [
                "dockerd", "--data-root", str(data), "--exec-root", str(self.rundir / f"dx{i}"),
                "-H", self.docker_host(i), "--pidfile", str(self.rundir / f"docker{i}.pid"),
            ]  # fmt: skip
            self._proc(name, self.agent_ns(i), argv)
        self.procs[name].start()
        env = {**os.environ, "DOCKER_HOST": self.docker_host(i)}
        wait_until(
            lambda: sh("docker", "info", env=env, check=False).returncode == 0,
            timeout_s=30,
            what="private dockerd",
        )
        if sh("docker", "image", "inspect", IMAGE, env=env, check=False).returncode != 0:
            subprocess.run(
                f"docker save {IMAGE} | DOCKER_HOST={self.docker_host(i)} docker load",
                shell=True,
                check=True,
                capture_output=True,
            )

    def stop_private_docker(self) -> None:
        i = self.private_docker_node
        assert i is not None
        self.procs[f"dockerd{i}"].stop(timeout_s=30)

    def agent_config(self, i: int) -> Path:
        scratch = self.workdir / f"scratch{i}"
        scratch.mkdir(exist_ok=True)
        low = 32000 + i * 100
        path = self.workdir / f"agent{i}.toml"
        path.write_text(
            "\n".join(
                [
                    f'node_id = "{self.node_id(i)}"',
                    'runtime = "docker"',
                    f'docker_host = "{self.docker_host(i)}"',
                    'device_plugins = ["fake"]',
                    f'listen_host = "{self.agent_ip(i)}"',
                    f"listen_port = {AGENT_PORT}",
                    f'config_store_url = "{self.etcd_url}"',
                    "registration_ttl_s = 4",
                    f'cluster_secret = "{CLUSTER_SECRET}"',
                    f'scratch_root = "{scratch}"',
                    f'allowed_mount_roots = ["{scratch}"]',
                    f'port_range = "{low}-{low + 49}"',
                    "heartbeat_interval_s = 1",
                    "cpu_capacity = 4",
                    "mem_capacity = 4294967296",
                    "stop_grace_s = 1",
                    "[device_options.fake]",
                    f"count = {self.gpus_per_node}",
                ]
            )
            + "\n"
        )
        return path

    def agent(self, i: int) -> Proc:
        name = f"agent{i}"
        if name not in self.procs:
            argv = [sys.executable, "-m", "client.cli.main", "agent", "serve",
                    "-c", str(self.agent_config(i))]  # fmt: skip
            self._proc(name, self.agent_ns(i), argv)
        return self.procs[name]

    # ---- API access from the root namespace ----
    def _auth(self, token: str | None) -> dict[str, str]:
        """token None: the admin's; "": anonymous."""
        chosen = self.token if token is None else token
        return {"Authorization": f"Bearer {chosen}"} if chosen else {}

    def sync_client(self, m: int = 1, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            transport=httpx.HTTPTransport(uds=self.socket(f"m{m}")),
            base_url=f"http://manager{m}",
            headers=self._auth(token),
            timeout=30,
        )

    def client(self, m: int = 1, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=self.socket(f"m{m}")),
            base_url=f"http://manager{m}",
            headers=self._auth(token),
            timeout=30,
        )

    def agents_by_id(self, m: int = 1) -> dict[str, dict[str, Any]]:
        with self.sync_client(m) as api:
            items = api.get("/api/v1/agents", params={"limit": 100}).json()["items"]
        return {a["id"]: a for a in items if a["id"].startswith(f"bc{self.id}-")}

    def wait_agents_alive(self, which: Any, *, timeout_s: float) -> None:
        wanted = {self.node_id(i) for i in which}

        def alive() -> bool:
            agents = self.agents_by_id()
            return all(agents.get(n, {}).get("status") == "alive" for n in wanted)

        try:
            wait_until(alive, timeout_s=timeout_s, what=f"agents {sorted(wanted)}")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from None

    def logs(self, tail: int = 2500) -> str:
        return "\n".join(f"--- {n} ---\n{p.log(tail)}" for n, p in self.procs.items())

    def containers(self, i: int, *, all_states: bool = False) -> list[dict[str, Any]]:
        """Containers of node i as Docker reports them (labels included)."""
        env = {**os.environ, "DOCKER_HOST": self.docker_host(i)}
        args = ["docker", "ps", "-q", "--filter", f"label=ai.berth.node-id={self.node_id(i)}"]
        if all_states:
            args.insert(2, "-a")
        for _ in range(5):
            ids = sh(*args, env=env).stdout.split()
            if not ids:
                return []
            # A container may be removed (reaped) between the listing and the inspect: list again.
            inspected = sh("docker", "inspect", *ids, env=env, check=False)
            if inspected.returncode == 0:
                return list(json.loads(inspected.stdout))
        raise RuntimeError(f"containers of node {i} kept vanishing between ps and inspect")

    def _remove_containers(self) -> None:
        for i in range(1, self.agents + 1):
            env = {**os.environ, "DOCKER_HOST": self.docker_host(i)}
            if sh("docker", "info", env=env, check=False).returncode != 0:
                continue
            label = f"label=ai.berth.node-id={self.node_id(i)}"
            ids = sh("docker", "ps", "-aq", "--filter", label, env=env, check=False).stdout.split()
            if ids:
                sh("docker", "rm", "-f", *ids, env=env, check=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_pg_port() -> int:
    used = sh("pg_lsclusters", "-h", check=False).stdout
    taken = {int(line.split()[2]) for line in used.splitlines() if line.split()}
    return random.choice([p for p in range(15500, 15900) if p not in taken])
