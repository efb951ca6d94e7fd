"""Storage proxy fixtures.

- `s3_server`: a real SeaweedFS S3 server, started once per test session. When
  BERTH_TEST_S3_ENDPOINT is set (scripts/test evaluates scripts/s3-server) it is reused; otherwise
  scripts/s3-server starts a private one on other ports and it is SIGKILLed at the end.
- `s3_options(bucket)`: options for a unique bucket per test module.
- FUSE mounts made by tests are unmounted by the fixtures that make them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from storage_proxy.app import create_apps
from storage_proxy.backends.posix import PosixBackend
from storage_proxy.backends.s3 import S3Backend
from storage_proxy.config import (
    PosixVolumeOptions,
    S3VolumeOptions,
    StorageProxyConfig,
    VolumeConfig,
)
from storage_proxy.contract import FileOp, mint_token

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    filer: str
    weed: str


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    env = os.environ
    if env.get("BERTH_TEST_S3_ENDPOINT"):
        yield S3Server(
            endpoint=env["BERTH_TEST_S3_ENDPOINT"],
            access_key=env["BERTH_TEST_S3_ACCESS_KEY"],
            secret_key=env["BERTH_TEST_S3_SECRET_KEY"],
            region=env.get("BERTH_TEST_S3_REGION", "us-east-1"),
            filer=env["BERTH_TEST_SEAWEED_FILER"],
            weed=env.get("BERTH_TEST_WEED", "weed"),
        )
        return
    state = tmp_path_factory.mktemp("seaweedfs")
    script_env = {**env, "BERTH_TEST_S3_STATE": str(state), "BERTH_S3_PORT_BASE": "18400"}
    out = subprocess.run(
        [str(ROOT / "scripts" / "s3-server")],
        env=script_env,
        check=True,
        capture_output=True,
        text=True,
        timeout=90,
    ).stdout
    values = dict(
        line.removeprefix("export ").split("=", 1)
        for line in out.splitlines()
        if line.startswith("export ")
    )
    try:
        yield S3Server(
            endpoint=values["BERTH_TEST_S3_ENDPOINT"],
            access_key=values["BERTH_TEST_S3_ACCESS_KEY"],
            secret_key=values["BERTH_TEST_S3_SECRET_KEY"],
            region=values["BERTH_TEST_S3_REGION"],
            filer=values["BERTH_TEST_SEAWEED_FILER"],
            weed=values["BERTH_TEST_WEED"],
        )
    finally:
        subprocess.run([str(ROOT / "scripts" / "s3-server"), "stop"], env=script_env, check=False)


@pytest.fixture(scope="module")
def s3_options(s3_server: S3Server) -> Iterator[S3VolumeOptions]:
    """Options for a bucket unique to this test module (created by the backend's start()).

    The mount root is world-traversable (pytest's tmp dirs are 0700), as on a node where
    non-root container users reach their mounts.
    """
    mount_root = Path(tempfile.mkdtemp(prefix="berth-s3mnt-"))
    mount_root.chmod(0o755)
    yield S3VolumeOptions(
        endpoint_url=s3_server.endpoint,
        bucket=f"berth-{uuid.uuid4().hex[:12]}",
        access_key=s3_server.access_key,
        secret_key=SecretStr(s3_server.secret_key),
        region=s3_server.region,
        part_size_bytes=5 * 1024 * 1024,
        mount_root=mount_root,
        filer=s3_server.filer,
    )
    shutil.rmtree(mount_root, ignore_errors=True)


@pytest.fixture
def make_posix(tmp_path: Path) -> Callable[..., PosixBackend]:
    def make(root: Path | None = None, **options: object) -> PosixBackend:
        directory = root or tmp_path / "volume"
        directory.mkdir(parents=True, exist_ok=True)
        return PosixBackend("local", PosixVolumeOptions(root=directory, **options))  # type: ignore[arg-type]

    return make


@pytest.fixture
async def s3_backend(s3_options: S3VolumeOptions) -> AsyncIterator[S3Backend]:
    backend = S3Backend("objects", s3_options)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()


def new_folder_id() -> str:
    return uuid.uuid4().hex


CLUSTER_SECRET = "cluster-secret-for-tests-0123456789abcdef"
TOKEN_SECRET = "token-secret-for-tests-0123456789abcdef"


@dataclass
class Proxy:
    """Both APIs of one proxy on loopback ports, over a posix volume `local` and an S3 volume
    `objects`."""

    config: StorageProxyConfig
    internal: TestClient[web.Request, web.Application]
    public: TestClient[web.Request, web.Application]
    posix_root: Path

    def token(
        self,
        folder_id: str,
        op: FileOp | str,
        *,
        volume: str = "local",
        path: str | None = None,
        ttl_s: int = 60,
        now: float | None = None,
    ) -> str:
        return mint_token(
            TOKEN_SECRET,
            volume=volume,
            folder_id=folder_id,
            op=op,
            path=path,
            ttl_s=ttl_s,
            now=now,
        )

    def auth(self, folder_id: str, op: FileOp | str, **kwargs: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(folder_id, op, **kwargs)}"}  # type: ignore[arg-type]


@pytest.fixture
async def proxy(tmp_path: Path, s3_options: S3VolumeOptions) -> AsyncIterator[Proxy]:
    posix_root = tmp_path / "posix"
    posix_root.mkdir()
    config = StorageProxyConfig(
        cluster_secret=SecretStr(CLUSTER_SECRET),
        token_secret=SecretStr(TOKEN_SECRET),
        public_url="https://files.example.test",
        volumes=[
            VolumeConfig(
                name="local", backend="posix", options=PosixVolumeOptions(root=posix_root)
            ),
            VolumeConfig(name="objects", backend="s3", options=s3_options),
        ],
    )
    apps = create_apps(config)
    internal = TestClient(TestServer(apps.internal, host="127.0.0.1"))
    public = TestClient(TestServer(apps.public, host="127.0.0.1"))
    await internal.start_server()
    await public.start_server()
    try:
        yield Proxy(config=config, internal=internal, public=public, posix_root=posix_root)
    finally:
        await public.close()
        await internal.close()
