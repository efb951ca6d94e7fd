"""Container start latency: the agent's HTTP API (create → running) vs raw `docker run -d`.

Same image (berth/busybox:test, `sleep 30`), same engine, interleaved, N repetitions each.
Prints JSON: p50/p95 in milliseconds for both and the ratio agent/raw.
Run: eval "$(./scripts/test-services)"; ./scripts/build-test-images;
     .venv/bin/python benchmarks/agent_start.py [--reps 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from agent.app import create_app
from agent.config import AgentConfig
from agent.contract import CLUSTER_AUTH_HEADER

IMAGE = "berth/busybox:test"
SECRET = "bench-secret"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(reps: int) -> dict[str, object]:
    scratch = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    config = AgentConfig(
        node_id=f"bench-{uuid.uuid4().hex[:6]}",
        cluster_secret=SECRET,
        scratch_root=scratch,
        docker_host=os.environ.get("DOCKER_HOST"),
        device_plugins=["fake"],
        port_range="38000-38100",
        stop_grace_s=0,
    )
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    headers = {CLUSTER_AUTH_HEADER: SECRET}
    agent_ms: list[float] = []
    raw_ms: list[float] = []
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            for index in range(reps):
                body = {
                    "container_id": f"bench-{index}",
                    "session_id": "bench",
                    "image": IMAGE,
                    "command": ["sleep", "30"],
                    "slots": {"cpu": "0.1", "mem": str(32 * 1024**2), "cuda.device": "1"},
                }
                started = time.perf_counter()
                async with http.post(f"{base}/v1/containers", json=body) as response:
                    info = await response.json()
                agent_ms.append((time.perf_counter() - started) * 1000)
                if response.status != 201 or info["state"] != "running":
                    raise RuntimeError(f"agent create failed: {info}")
                async with http.delete(f"{base}/v1/containers/bench-{index}") as response:
                    await response.read()

                name = f"bench-raw-{uuid.uuid4().hex[:8]}"
                started = time.perf_counter()
                _docker_cli("run", "-d", "--name", name, IMAGE, "sleep", "30")
                raw_ms.append((time.perf_counter() - started) * 1000)
                _docker_cli("rm", "-f", name)
    finally:
        await runner.cleanup()
    agent_p50, raw_p50 = statistics.median(agent_ms), statistics.median(raw_ms)
    return {
        "benchmark": "agent_start",
        "image": IMAGE,
        "repetitions": reps,
        "agent_api_create_ms": {
            "p50": round(agent_p50, 1),
            "p95": round(percentile(agent_ms, 95), 1),
        },
        "docker_run_d_ms": {"p50": round(raw_p50, 1), "p95": round(percentile(raw_ms, 95), 1)},
        "ratio_p50": round(agent_p50 / raw_p50, 2),
        "ratio_p95": round(percentile(agent_ms, 95) / percentile(raw_ms, 95), 2),
    }


def _docker_cli(*args: str) -> None:
    # Blocking on purpose: the baseline is the plain CLI, and the agent is idle meanwhile.
    subprocess.run(["docker", *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.reps)), indent=2))


if __name__ == "__main__":
    main()
