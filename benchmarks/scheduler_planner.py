"""Benchmark the pure scheduler planner.

10,000 pending sessions (a mix of 1/2/4/8-GPU and CPU-only requests, across projects and users)
onto 1,000 nodes with 8 GPUs each in one resource group; a fifth of the GPUs start busy, scattered,
so the planner has to deal with fragmentation. Prints one JSON object:

- planner: wall time of `schedule()`, sessions decided per second, placements per second, GPU
  occupancy before and after, verdict counts;
- baseline: the same sessions through a naive first-fit scan (every session tests every node on
  node-level totals only, no device-level fit), the O(sessions × nodes) design the index avoids;
- target: the placements/s goal and whether it was met.

Run:  .venv/bin/python benchmarks/scheduler_planner.py [--sessions N] [--nodes N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from manager.scheduler import (
    DeviceState,
    Node,
    OrderingKind,
    PendingSession,
    ResourceGroup,
    SlotMap,
    Snapshot,
    schedule,
)

TARGET_PLACEMENTS_PER_S = 1_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)
GIB = 2**30


def build(*, sessions: int, nodes: int, seed: int, ordering: OrderingKind) -> Snapshot:
    rng = random.Random(seed)
    node_list = []
    for n in range(nodes):
        busy = set(rng.sample(range(8), k=rng.choice([0, 0, 1, 2, 3, 4])))
        devices = tuple(
            DeviceState(
                device_id=f"n{n}-g{i}",
                slot="cuda.device",
                whole_free=i not in busy,
                numa_node=i // 4,
            )
            for i in range(8)
        )
        node_list.append(
            Node(
                node_id=f"n{n:04d}",
                resource_group="gpu",
                architecture="x86_64",
                total=SlotMap.parse({"cpu": 96, "mem": "1024g", "cuda.device": 8}),
                free=SlotMap.parse(
                    {"cpu": 96 - 8 * len(busy), "mem": (1024 - 64 * len(busy)) * GIB}
                ),
                devices=devices,
                images=frozenset({"pytorch:2"}),
            )
        )
    pending = []
    for s in range(sessions):
        kind = rng.choices(["cpu", "1", "2", "4", "8"], weights=[20, 35, 20, 15, 10])[0]
        if kind == "cpu":
            request = SlotMap.parse(
                {"cpu": rng.choice([1, 2, 4]), "mem": f"{rng.choice([2, 4, 8])}g"}
            )
        else:
            count = int(kind)
            request = SlotMap.parse(
                {"cuda.device": count, "cpu": 4 * count, "mem": f"{32 * count}g"}
            )
        project = f"p{rng.randrange(20)}"
        pending.append(
            PendingSession(
                session_id=f"s{s:05d}",
                created_at=NOW - timedelta(seconds=sessions - s),
                resource_group="gpu",
                domain_id="d",
                project_id=project,
                user_id=f"{project}-u{rng.randrange(10)}",
                containers=(request,),
                image="pytorch:2",
                architecture="x86_64",
                priority=rng.randrange(3),
            )
        )
    return Snapshot(
        pending=tuple(pending),
        nodes=tuple(node_list),
        resource_groups={"gpu": ResourceGroup("gpu", ordering=ordering)},
    )


def occupancy(snapshot: Snapshot, placed_gpus: int = 0) -> float:
    total = sum(len(n.devices) for n in snapshot.nodes)
    busy = sum(1 for n in snapshot.nodes for d in n.devices if not d.whole_free)
    return round((busy + placed_gpus) / total, 4)


def naive_first_fit(snapshot: Snapshot) -> tuple[float, int]:
    """Every session scans every node: free-sum bookkeeping only, no devices, no policies."""
    free = [
        dict(n.free) | {"cuda.device": Decimal(sum(d.whole_free for d in n.devices))}
        for n in snapshot.nodes
    ]
    placed = 0
    started = time.perf_counter()
    for session in snapshot.pending:
        request = session.requested
        for node_free in free:
            if request.fits(node_free):
                for slot, amount in request.items():
                    node_free[slot] -= amount
                placed += 1
                break
    return time.perf_counter() - started, placed


def run(*, sessions: int, nodes: int, seed: int, ordering: OrderingKind) -> dict[str, object]:
    snapshot = build(sessions=sessions, nodes=nodes, seed=seed, ordering=ordering)
    started = time.perf_counter()
    plan = schedule(snapshot, now=NOW)
    elapsed = time.perf_counter() - started
    placed_gpus = sum(
        len(ids)
        for a in plan.assignments.values()
        for c in a.containers
        for ids in c.device_ids.values()
    )
    return {
        "ordering": ordering.value,
        "wall_s": round(elapsed, 3),
        "sessions_decided_per_s": round(sessions / elapsed),
        "placements": len(plan.assignments),
        "placements_per_s": round(len(plan.assignments) / elapsed),
        "gpu_occupancy_before": occupancy(snapshot),
        "gpu_occupancy_after": occupancy(snapshot, placed_gpus),
        "verdicts": dict(Counter(v.code.value for v in plan.verdicts.values())),
        "phase_s": {k: round(v, 3) for k, v in plan.timings_s.items()},
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    results = [
        run(sessions=args.sessions, nodes=args.nodes, seed=args.seed, ordering=kind)
        for kind in (OrderingKind.FIFO, OrderingKind.PRIORITY, OrderingKind.DRF)
    ]
    snapshot = build(
        sessions=args.sessions, nodes=args.nodes, seed=args.seed, ordering=OrderingKind.FIFO
    )
    naive_s, naive_placed = naive_first_fit(snapshot)
    worst = min(int(str(r["placements_per_s"])) for r in results)
    print(
        json.dumps(
            {
                "benchmark": "scheduler_planner",
                "sessions": args.sessions,
                "nodes": args.nodes,
                "gpus": args.nodes * 8,
                "planner": results,
                "baseline_naive_first_fit": {
                    "wall_s": round(naive_s, 3),
                    "placements": naive_placed,
                    "placements_per_s": round(naive_placed / naive_s),
                },
                "target": {
                    "placements_per_s": TARGET_PLACEMENTS_PER_S,
                    "worst_planner_placements_per_s": worst,
                    "met": worst >= TARGET_PLACEMENTS_PER_S,
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
