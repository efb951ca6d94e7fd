"""`python -m tests.cluster_mode.harness_cli start WORKDIR | stop ID` (scripts/cluster-harness):
start a namespaced cluster by hand and keep it until SIGINT/SIGTERM, or clean up after a crash."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.cluster_mode.harness import PG_VERSION, Cluster, sh


def main(argv: list[str]) -> int:
    """`start WORKDIR`: start a cluster, print its description as JSON, keep running until
    SIGTERM/SIGINT, then tear everything down. `stop ID`: clean up after a crashed harness."""
    if len(argv) >= 2 and argv[0] == "start":
        cluster = Cluster(Path(argv[1]).resolve())
        cluster.start()
        print(json.dumps(describe(cluster), indent=2), flush=True)
        stop = False

        def handle(_sig: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        try:
            while not stop:
                time.sleep(0.5)
        finally:
            cluster.stop()
        return 0
    if len(argv) == 2 and argv[0] == "stop":
        return cleanup(argv[1])
    print("usage: cluster-harness start WORKDIR | stop ID", file=sys.stderr)
    return 2


def describe(cluster: Cluster) -> dict[str, Any]:
    return {
        "id": cluster.id,
        "subnet": f"10.123.{cluster.subnet}.0/24",
        "token": cluster.token,
        "managers": {f"m{m}": cluster.socket(f"m{m}") for m in (1, 2)},
        "storage_proxy": cluster.socket("proxy"),
        "etcd": cluster.socket("etcd"),
        "namespaces": [cluster.ctl] + [cluster.agent_ns(i) for i in range(1, cluster.agents + 1)],
        "example": f"curl --unix-socket {cluster.socket('m1')} "
        f"-H 'Authorization: Bearer {cluster.token}' http://m/api/v1/agents",
    }


def cleanup(cluster_id: str) -> int:
    """Best effort removal of everything a crashed harness `cluster_id` left behind."""
    for line in sh("ip", "netns", "list").stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ns.startswith(f"bc{cluster_id}"):
            for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", ns, check=False)
    sh("pg_dropcluster", "--stop", PG_VERSION, f"bc{cluster_id}", check=False)
    shutil.rmtree(f"/run/bc-{cluster_id}", ignore_errors=True)
    print("removed namespaces and the PostgreSQL cluster; delete the unreachable route with "
          "`ip route del unreachable 10.123.<n>.0/24` if `ip route` still lists it")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
