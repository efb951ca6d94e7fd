"""Scheduler benchmark: 10,000 pending sessions (mixed 1/2/4/8-GPU and CPU-only) onto 1,000
simulated nodes with 8 GPUs each, rows in a real PostgreSQL.

Reports, as JSON:
- planner: placements/s of the pure planner over a snapshot read from the database;
- plan_commit: placements/s of plan + guarded commit (what is durably committed);
- cycle: the same including the snapshot read;
- steady: time in queue (p50/p99) under a steady arrival rate with sessions that end;
- occupancy: GPU occupancy reached after the first cycle.

Usage: python benchmarks/scheduler.py [--admin-dsn postgresql://postgres@127.0.0.1/postgres]
       [--sessions 10000] [--nodes 1000] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import update

from manager.db import migrate
from manager.db.engine import create_db_factory, create_engine
from manager.db.models import SessionRow
from manager.lifecycle.record import transition
from manager.lifecycle.session import Reason, SessionStatus
from manager.scheduler import schedule
from manager.services import scheduling
from manager.services.ledger import release_session

GPU_MIX = [0, 1, 1, 1, 2, 2, 4, 8]  # CPU-only and 1/2/4/8-GPU requests


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(
            "BERTH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0, help="arrivals/s in the steady phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady phase")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    random.seed(args.seed)

    name = f"berth_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        await migrate.upgrade(url)
        ids = await _seed(url, nodes=args.nodes)
        await _insert_sessions(url, ids, count=args.sessions, now=datetime.now(UTC))
        result = await _measure_cycle(url, nodes=args.nodes)
        result["steady"] = await _steady(url, ids, rate=args.rate, seconds=args.seconds)
        result["config"] = {"sessions": args.sessions, "nodes": args.nodes, "gpus_per_node": 8}
        print(json.dumps(result, indent=2))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(url: str, *, nodes: int) -> dict[str, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        domain, project, user, group = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO domains (id, name, description, is_active) VALUES ($1,'d','',true)",
            domain,
        )
        await conn.execute(
            "INSERT INTO projects (id, domain_id, name, description, is_active) "
            "VALUES ($1,$2,'p','',true)",
            project,
            domain,
        )
        await conn.execute(
            "INSERT INTO users (id, domain_id, username, full_name, role, is_active) "
            "VALUES ($1,$2,'u','','user',true)",
            user,
            domain,
        )
        await conn.execute(
            "INSERT INTO resource_groups (id, name, description, scheduling_policy, placement,"
            " backfill_wait_s) VALUES ($1,'default','','fifo','binpack',0)",
            group,
        )
        await conn.execute("INSERT INTO resource_group_projects VALUES ($1,$2)", group, project)
        now = datetime.now(UTC)
        rows = []
        for n in range(nodes):
            node_id = f"sim-{n:05d}"
            devices = [
                {
                    "id": f"{node_id}-g{i}",
                    "plugin": "fake",
                    "slot_name": "cuda.device",
                    "numa_node": i // 4,
                    "health": "healthy",
                }
                for i in range(8)
            ]
            rows.append(
                (
                    node_id,
                    "default",
                    "http://127.0.0.1:9",
                    "x86_64",
                    "docker",
                    "sim",
                    "alive",
                    False,
                    False,
                    json.dumps({"cpu": "64", "mem": str(512 * 2**30), "cuda.device": "8"}),
                    json.dumps(devices),
                    json.dumps([{"name": "img", "labels": {}}]),
                    json.dumps({"status": "ok"}),
                    "{}",
                    "[]",
                    "{}",
                    now,
                )
            )
        await conn.executemany(
            "INSERT INTO agents (id, resource_group, advertised_url, architecture, runtime,"
            " agent_version, status, cordoned, draining, capacity, devices, images,"
            " runtime_health, plugin_errors, reported_containers, allocated, last_heartbeat_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17)",
            rows,
        )
        return {"domain": domain, "project": project, "user": user}
    finally:
        await conn.close()


def _session_row(ids: dict[str, uuid.UUID], now: datetime) -> tuple[object, ...]:
    gpus = random.choice(GPU_MIX)
    spec = {"cpu": str(random.choice([1, 2, 4])), "mem": str(8 * 2**30)}
    if gpus:
        spec["cuda.device"] = str(gpus)
    sid = uuid.uuid4()
    return (
        sid,
        f"s-{sid.hex[:8]}",
        ids["domain"],
        ids["project"],
        ids["user"],
        "default",
        "batch",
        "img",
        "x86_64",
        json.dumps([spec]),
        "pending",
        now,
        now,
        now,
    )


async def _insert_sessions(
    url: str, ids: dict[str, uuid.UUID], *, count: int, now: datetime
) -> list[uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        rows = [_session_row(ids, now + timedelta(microseconds=i)) for i in range(count)]
        await conn.executemany(
            "INSERT INTO sessions (id, name, domain_id, project_id, user_id, resource_group, type,"
            " image, architecture, containers_spec, status, status_changed_at, waiting_since,"
            " created_at, env, multi_node, mounts, ports, tags, priority, max_retries, attempt,"
            " status_reason, status_message, dispatch_attempts)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,'{}',false,'[]','[]','[]',"
            "0,0,0,'created','',0)",
            rows,
        )
        return [r[0] for r in rows]  # type: ignore[misc]
    finally:
        await conn.close()


async def _measure_cycle(url: str, *, nodes: int) -> dict[str, object]:
    engine = create_engine(url, pool_size=4)
    db_factory = create_db_factory(engine)
    try:
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        async with db_factory() as db, db.begin():
            snapshot = await scheduling.build_snapshot(db)
        t1 = time.perf_counter()
        plan = schedule(snapshot, now=now)
        t2 = time.perf_counter()
        async with db_factory() as db, db.begin():
            committed = await scheduling.commit_plan(db, plan, now=now)
        t3 = time.perf_counter()
        async with db_factory() as db, db.begin():
            await scheduling.write_verdicts(db, plan, now=now)
        t4 = time.perf_counter()
        placed = len(plan.assignments)
        done = len(committed.committed)
        used = sum(
            sum(
                1 for _ in a.containers for ids in a.containers[0].device_ids.values() for _ in ids
            )
            for a in plan.assignments.values()
        )
        return {
            "pending": len(snapshot.pending),
            "planner": {
                "seconds": round(t2 - t1, 3),
                "placements": placed,
                "placements_per_s": round(placed / (t2 - t1)),
            },
            "plan_commit": {
                "seconds": round(t3 - t1, 3),
                "committed": done,
                "placements_per_s": round(done / (t3 - t1)),
            },
            "cycle": {
                "snapshot_s": round(t1 - t0, 3),
                "verdicts_s": round(t4 - t3, 3),
                "placements_per_s_incl_snapshot": round(done / (t3 - t0)),
            },
            "occupancy": {
                "gpus_used": used,
                "gpus_total": nodes * 8,
                "ratio": round(used / (nodes * 8), 4),
            },
        }
    finally:
        await engine.dispose()


async def _steady(
    url: str, ids: dict[str, uuid.UUID], *, rate: float, seconds: float
) -> dict[str, object]:
    """Empty the cluster, then feed sessions at `rate`/s that each run 2–10 s; the scheduler
    cycles continuously. Reports time in queue (created → scheduled)."""
    engine = create_engine(url, pool_size=6)
    db_factory = create_db_factory(engine)
    conn = await asyncpg.connect(url)
    try:
        now = datetime.now(UTC)
        await conn.execute("UPDATE sessions SET status='cancelled' WHERE status='pending'")
        placed = await conn.fetch("SELECT id FROM sessions WHERE status='scheduled'")
        async with db_factory() as db, db.begin():
            for row in placed:
                await release_session(db, session_id=row["id"], now=now)
            await db.execute(
                update(SessionRow)
                .where(SessionRow.status == SessionStatus.SCHEDULED)
                .values(status=SessionStatus.TERMINATED)
            )
        ends: dict[uuid.UUID, float] = {}
        stop = time.perf_counter() + seconds
        arrivals = 0

        async def arrive() -> None:
            nonlocal arrivals
            batch_s = 0.1
            while time.perf_counter() < stop:
                n = max(1, int(rate * batch_s))
                await _insert_sessions(url, ids, count=n, now=datetime.now(UTC))
                arrivals += n
                await asyncio.sleep(batch_s)

        async def finish() -> None:
            while time.perf_counter() < stop + 5:
                due = [s for s, t in ends.items() if t <= time.perf_counter()]
                for sid in due:
                    # One transaction per session keeps the ledger's lock order (agents, then
                    # scopes), as the terminate loop does.
                    async with db_factory() as db, db.begin():
                        await release_session(db, session_id=sid, now=datetime.now(UTC))
                        row = await db.get(SessionRow, sid)
                        if row is not None and row.status is SessionStatus.SCHEDULED:
                            transition(
                                db,
                                row,
                                SessionStatus.TERMINATING,
                                reason=Reason.EXIT_SUCCESS,
                                now=datetime.now(UTC),
                            )
                            transition(
                                db,
                                row,
                                SessionStatus.TERMINATED,
                                reason=Reason.EXIT_SUCCESS,
                                now=datetime.now(UTC),
                            )
                    ends.pop(sid, None)
                await asyncio.sleep(0.2)

        async def cycle() -> int:
            cycles = 0
            while time.perf_counter() < stop + 5:
                now = datetime.now(UTC)
                async with db_factory() as db, db.begin():
                    snapshot = await scheduling.build_snapshot(db)
                plan = schedule(snapshot, now=now)
                async with db_factory() as db, db.begin():
                    result = await scheduling.commit_plan(db, plan, now=now)
                for sid in result.committed:
                    ends[uuid.UUID(sid)] = time.perf_counter() + random.uniform(2, 10)
                cycles += 1
                await asyncio.sleep(0.05)
            return cycles

        _, _, cycles = await asyncio.gather(arrive(), finish(), cycle())
        waits = [
            r["w"]
            for r in await conn.fetch(
                "SELECT EXTRACT(EPOCH FROM scheduled_at - created_at)::float AS w FROM sessions "
                "WHERE scheduled_at IS NOT NULL AND created_at > $1",
                now,
            )
        ]
        still = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE status='pending' AND created_at > $1", now
        )
        waits.sort()
        return {
            "arrival_rate_per_s": rate,
            "seconds": seconds,
            "arrivals": arrivals,
            "placed": len(waits),
            "still_pending": still,
            "cycles": cycles,
            "queue_time_p50_s": round(statistics.median(waits), 3) if waits else None,
            "queue_time_p99_s": round(waits[int(len(waits) * 0.99) - 1], 3) if waits else None,
        }
    finally:
        await conn.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
