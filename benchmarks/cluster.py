"""Cluster benchmark on the namespaced harness (tests/cluster_mode/harness.py; root needed):
two managers, three agents with the real Docker engine, private PostgreSQL, Redis and etcd.

Reports, as JSON:
- lost_node: seconds from `kill -9` of an agent running a session until the manager marks the
  session lost (and the node lost), with the configured BERTH_AGENT_LOST_AFTER_S;
- scheduling: N sessions submitted as fast as possible, time until every one left `pending`
  (placed by the scheduler and committed), with one manager (the second stopped) and with two
  managers (submissions split between them) — the baseline and the candidate in the same run.

Usage: scripts/test-services ... then
       python benchmarks/cluster.py [--sessions 60] [--lost-after 6] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

# The harness lives with the tests (it is their fixture); run from anywhere in the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.cluster_mode.harness import IMAGE, Cluster

TERMINAL = ("terminated", "error", "cancelled")


def session(command: str) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "type": "batch",
        "command": ["sh", "-c", command],
        "resources": {"cpu": "0.05", "mem": "16m"},
    }


async def poll(api: httpx.AsyncClient, ids: list[str], done: Any, timeout_s: float) -> float:
    """Seconds until done(status) holds for every session (polled every 0.1 s)."""
    started = time.monotonic()
    pending = set(ids)
    while pending:
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{len(pending)} sessions did not get there in {timeout_s}s")
        page = await api.get("/api/v1/sessions", params={"all": "true", "limit": 1000})
        for item in page.json()["items"]:
            if item["id"] in pending and done(item["status"]):
                pending.discard(item["id"])
        if pending:
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def scheduling_round(cluster: Cluster, *, managers: list[int], sessions: int) -> float:
    clients = [cluster.client(m) for m in managers]
    try:
        started = time.monotonic()

        async def submit(i: int) -> str:
            api = clients[i % len(clients)]
            resp = await api.post("/api/v1/sessions", json=session("sleep 120"))
            resp.raise_for_status()
            return str(resp.json()["id"])

        ids = list(await asyncio.gather(*(submit(i) for i in range(sessions))))
        await poll(clients[0], ids, lambda s: s != "pending", timeout_s=300)
        elapsed = time.monotonic() - started
        await asyncio.gather(*(clients[0].delete(f"/api/v1/sessions/{sid}") for sid in ids))
        await poll(clients[0], ids, lambda s: s in TERMINAL, timeout_s=300)
        return elapsed
    finally:
        for api in clients:
            await api.aclose()


async def lost_node_detection(cluster: Cluster) -> dict[str, Any]:
    async with cluster.client(1) as api:
        resp = await api.post("/api/v1/sessions", json=session("sleep 600"))
        sid = resp.json()["id"]
        await poll(api, [sid], lambda s: s == "running", timeout_s=120)
        detail = (await api.get(f"/api/v1/sessions/{sid}")).json()
        node_id = detail["container_list"][0]["node_id"]
        node = next(i for i in range(1, cluster.agents + 1) if cluster.node_id(i) == node_id)
        killed = time.monotonic()
        cluster.agent(node).kill9()
        await poll(api, [sid], lambda s: s == "error", timeout_s=120)
        detected = time.monotonic() - killed
    cluster.agent(node).start()
    cluster.wait_agents_alive([node], timeout_s=60)
    return {"seconds": round(detected, 2), "lost_after_s": cluster.lost_after_s}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="berth-cluster-bench-", dir="/var/tmp"))
    cluster = Cluster(workdir, lost_after_s=args.lost_after, private_docker_node=None)
    cluster.start()
    try:
        lost = await lost_node_detection(cluster)
        one: list[float] = []
        two: list[float] = []
        for _ in range(args.rounds):
            cluster.manager(2).stop()
            one.append(await scheduling_round(cluster, managers=[1], sessions=args.sessions))
            cluster.manager(2).start()
            cluster.wait_manager(2)
            two.append(await scheduling_round(cluster, managers=[1, 2], sessions=args.sessions))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    def summary(times: list[float]) -> dict[str, Any]:
        median = statistics.median(times)
        return {
            "seconds": [round(t, 2) for t in times],
            "median_s": round(median, 2),
            "sessions_per_s": round(args.sessions / median, 1),
        }

    baseline, candidate = summary(one), summary(two)
    return {
        "benchmark": "cluster",
        "nodes": cluster.agents,
        "sessions": args.sessions,
        "lost_node_detection": lost,
        "scheduling": {
            "one_manager": baseline,
            "two_managers": candidate,
            "speedup": round(candidate["sessions_per_s"] / baseline["sessions_per_s"], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--lost-after", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=1)
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
