"""Notebook start latency through the whole stack: `POST /api/v1/sessions` (interactive,
berth/jupyterlab:4, 1 fake GPU) → scheduler → dispatch → agent → JupyterLab answering
`/apps/<id>/jupyter/api/status` through the manager's app proxy. A manager (all loops) and an
agent run as real processes on a fresh database; the Docker engine is $DOCKER_HOST.

Baseline in the same run: a raw `docker run -d` of the same image with the same env and port,
polled directly until JupyterLab answers (no Berth in the path).

Usage: eval "$(./scripts/test-services)"; ./scripts/build-images jupyterlab
       python benchmarks/notebook_e2e.py [--sessions 10] [--burst 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from manager.db import migrate

IMAGE = "berth/jupyterlab:4"
SECRET = "bench-cluster-secret"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--burst", type=int, default=10)
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(
            "BERTH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    args = parser.parse_args()
    name = f"berth_nbbench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db_url = args.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    work = Path(tempfile.mkdtemp(prefix="nbbench-"))
    port, agent_port = _port(), _port()
    env = {
        **os.environ,
        "BERTH_DB_URL": db_url,
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_CLUSTER_SECRET": SECRET,
        "BERTH_SECRET_KEY": "bench-secret-key-0123456789",
        "BERTH_LOG_LEVEL": "WARNING",
    }
    (work / "agent.toml").write_text(
        f'node_id = "bench"\nruntime = "docker"\ndevice_plugins = ["fake"]\n'
        f'listen_port = {agent_port}\nadvertised_url = "http://127.0.0.1:{agent_port}"\n'
        f'manager_url = "http://127.0.0.1:{port}"\ncluster_secret = "{SECRET}"\n'
        f'scratch_root = "{work / "scratch"}"\nheartbeat_interval_s = 1\n'
        f"[device_options.fake]\ncount = 8\n"
    )
    procs: list[asyncio.subprocess.Process] = []
    try:
        await migrate.upgrade(db_url)
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "client.cli.main",
            "manager",
            "create-admin",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        token = (await cli.communicate())[0].decode().strip()
        for args_ in (["manager", "serve"], ["agent", "serve", "-c", str(work / "agent.toml")]):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "client.cli.main",
                    *args_,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            await _until(http, f"{base}/api/v1/agents", lambda d: bool(d["items"]), 60)
            sequential = [await _one(http, base) for _ in range(args.sessions)]
            burst = await asyncio.gather(*(_one(http, base) for _ in range(args.burst)))
            raw = [await _raw_docker() for _ in range(min(args.sessions, 5))]
        print(
            json.dumps(
                {
                    "image": IMAGE,
                    "sequential": _stats(sequential),
                    "burst": {**_stats(list(burst)), "size": args.burst},
                    "baseline_raw_docker_run": _stats(raw),
                },
                indent=2,
            )
        )
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        await _remove_bench_containers()


async def _remove_bench_containers() -> None:
    listing = await asyncio.create_subprocess_exec(
        "docker",
        "ps",
        "-aq",
        "--filter",
        "label=ai.berth.node-id=bench",
        stdout=asyncio.subprocess.PIPE,
    )
    ids = (await listing.communicate())[0].decode().split()
    if ids:
        await (
            await asyncio.create_subprocess_exec(
                "docker", "rm", "-f", *ids, stdout=asyncio.subprocess.DEVNULL
            )
        ).wait()


async def _one(http: aiohttp.ClientSession, base: str) -> float:
    started = time.perf_counter()
    async with http.post(
        f"{base}/api/v1/sessions",
        json={
            "image": IMAGE,
            "type": "interactive",
            "resources": {"cpu": "2", "mem": "768m", "cuda.device": 1},  # raw run has no CPU cap
        },
    ) as resp:
        session = await resp.json()
        assert resp.status == 201, session
    url = f"{base}/apps/{session['id']}/jupyter/api/status"
    while True:
        async with http.get(url) as resp:
            if resp.status == 200:
                break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    async with http.delete(f"{base}/api/v1/sessions/{session['id']}"):
        pass
    return elapsed


async def _raw_docker() -> float:
    port = _port()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "docker",
        "run",
        "-d",
        "--rm",
        "-p",
        f"127.0.0.1:{port}:8888",
        "-e",
        "BERTH_APP_TOKEN=t",
        "-e",
        "JUPYTER_TOKEN=t",
        "-e",
        "BERTH_APP_PREFIX=/x/",
        IMAGE,
        stdout=asyncio.subprocess.PIPE,
    )
    cid = (await proc.communicate())[0].decode().strip()
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(
                    f"http://127.0.0.1:{port}/x/jupyter/api/status",
                    headers={"Authorization": "token t"},
                ) as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    await (
        await asyncio.create_subprocess_exec(
            "docker", "rm", "-f", cid, stdout=asyncio.subprocess.DEVNULL
        )
    ).wait()
    return elapsed


async def _until(http: aiohttp.ClientSession, url: str, ok: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            async with http.get(url) as resp:
                if resp.status == 200 and ok(await resp.json()):  # type: ignore[operator]
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit(f"{url} not ready")


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 3),
        "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "max_s": round(ordered[-1], 3),
    }


if __name__ == "__main__":
    asyncio.run(main())
