"""Virtual-folder fixtures: a real storage proxy process (posix volume `local`, SeaweedFS S3
volume `objects`), an in-process manager wired to it, and a full stack (manager + agent on the
real Docker engine + the proxy) for the mount tests."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from manager.config import ManagerConfig
from tests.e2e.conftest import (
    CLUSTER_SECRET,
    Stack,
    create_admin,
    manager_env,
    write_agent_config,
)
from tests.e2e.conftest import stack_db as stack_db
from tests.live import berth_process, free_port, wait_http_ok
from tests.storage_proxy.conftest import S3Server
from tests.storage_proxy.conftest import s3_server as s3_server

TOKEN_SECRET = "vfolders-token-secret-0123456789abcdef"


@dataclass(frozen=True)
class ProxyProcess:
    internal_url: str
    public_url: str
    posix_root: Path
    bucket: str


@pytest.fixture(scope="session")
def storage_proxy(
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ProxyProcess]:
    """`python -m storage_proxy` as an operator runs it, shared by every vfolder test."""
    workdir = tmp_path_factory.mktemp("storage-proxy")
    posix_root = workdir / "local"
    posix_root.mkdir()
    # Containers and non-root users reach folders through these directories.
    for path in (workdir, posix_root):
        path.chmod(0o755)
    internal, public = free_port(), free_port()
    bucket = f"berth-vf-{uuid.uuid4().hex[:10]}"
    config = workdir / "storage-proxy.toml"
    config.write_text(
        "\n".join(
            [
                f"internal_port = {internal}",
                f"public_port = {public}",
                f'public_url = "http://127.0.0.1:{public}"',
                f'cluster_secret = "{CLUSTER_SECRET}"',
                f'token_secret = "{TOKEN_SECRET}"',
                "[[volumes]]",
                'name = "local"',
                'backend = "posix"',
                f'options = {{ root = "{posix_root}" }}',
                "[[volumes]]",
                'name = "objects"',
                'backend = "s3"',
                "[volumes.options]",
                f'endpoint_url = "{s3_server.endpoint}"',
                f'bucket = "{bucket}"',
                f'access_key = "{s3_server.access_key}"',
                f'secret_key = "{s3_server.secret_key}"',
                f'region = "{s3_server.region}"',
                f'filer = "{s3_server.filer}"',
                f'mount_root = "{workdir / "s3mnt"}"',
            ]
        )
        + "\n"
    )
    log_path = workdir / "storage-proxy.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTH_STORAGE")}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "storage_proxy", str(config)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_http_ok(f"http://127.0.0.1:{internal}/health", timeout_s=30, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{log_path.read_text()[-3000:]}") from None
        yield ProxyProcess(
            internal_url=f"http://127.0.0.1:{internal}",
            public_url=f"http://127.0.0.1:{public}",
            posix_root=posix_root,
            bucket=bucket,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def storage_config(base: ManagerConfig, url: str) -> ManagerConfig:
    return base.model_copy(
        update={
            "storage_proxy_url": url,
            "storage_token_secret": SecretStr(TOKEN_SECRET),
            "cluster_secret": SecretStr(CLUSTER_SECRET),
        }
    )


@pytest.fixture
def vf_config(manager_config: ManagerConfig, storage_proxy: ProxyProcess) -> ManagerConfig:
    return storage_config(manager_config, storage_proxy.internal_url)


@pytest.fixture
async def vapi(aiohttp_client: Any, vf_config: ManagerConfig) -> Any:
    """The manager app in-process (real DB and middleware), wired to the real proxy."""
    from manager.app import create_app

    return await aiohttp_client(create_app(vf_config))


@pytest.fixture(scope="module")
def vstack(
    stack_db: str,
    storage_proxy: ProxyProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """tests/e2e's stack plus the storage proxy: the manager knows the proxy, the agent may
    bind-mount the posix volume and FUSE-mounts S3 folders under its scratch directory."""
    workdir = tmp_path_factory.mktemp("vstack")
    port = free_port()
    env = {
        **manager_env(stack_db, port),
        "BERTH_STORAGE_PROXY_URL": storage_proxy.internal_url,
        "BERTH_STORAGE_TOKEN_SECRET": TOKEN_SECRET,
    }
    token = create_admin(env)
    url = f"http://127.0.0.1:{port}"
    with berth_process(
        ["manager", "serve"], env=env, log_path=workdir / "manager.log", ready_url=url + "/readyz"
    ):
        stack = Stack(url=url, token=token, db_url=stack_db, env=env, workdir=workdir)
        node_id = f"node-{uuid.uuid4().hex[:6]}"
        agent_port = free_port()
        scratch = workdir / "scratch"
        config = write_agent_config(
            workdir / f"{node_id}.toml",
            node_id=node_id,
            manager_url=url,
            port=agent_port,
            gpus=0,
            scratch=scratch,
        )
        config.write_text(
            config.read_text().replace(
                f'allowed_mount_roots = ["{scratch}"]',
                f'allowed_mount_roots = ["{scratch}", "{storage_proxy.posix_root}"]',
            )
        )
        with berth_process(
            ["agent", "serve", "-c", str(config)],
            env={},
            log_path=workdir / f"{node_id}.log",
            ready_url=f"http://127.0.0.1:{agent_port}/healthz",
            ready_headers={"X-Berth-Cluster-Secret": CLUSTER_SECRET},
        ) as agent:
            stack.agents[node_id] = agent
            yield stack


async def upload(public_url: str, token: str, path: str, data: bytes) -> None:
    """A whole-file tus upload (creation + one PATCH) against the proxy's public API."""
    import base64

    meta = "path " + base64.b64encode(path.encode()).decode()
    async with httpx.AsyncClient(base_url=public_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
        created = await http.post(
            "/v1/upload",
            headers={**auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta},
        )
        assert created.status_code == 201, created.text
        patched = await http.patch(
            created.headers["Location"],
            content=data,
            headers={
                **auth,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text


async def download(public_url: str, token: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=public_url, timeout=30) as http:
        return await http.get(
            "/v1/download", params={"path": path}, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.fixture
async def no_proxy_config(manager_config: ManagerConfig) -> AsyncIterator[ManagerConfig]:
    """The manager pointed at a port where no proxy listens (an outage)."""
    yield storage_config(manager_config, f"http://127.0.0.1:{free_port()}")
