"""API latency benchmark: create / get / list at a fixed request rate with 100k rows in the
tables, against a real manager process and PostgreSQL. The baseline in the same run is
`GET /healthz` (no database) at the same rate, so the JSON shows what the API stack adds.

Usage: python benchmarks/api.py [--rows 100000] [--rate 200] [--seconds 20] [--warmup-seconds 5]
       [--workers 2]
       [--admin-dsn postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import time
import uuid

import aiohttp
import asyncpg  # type: ignore[import-untyped]

from manager.db import migrate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(
            "BERTH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1/postgres"
        ),
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="manager API worker processes (the `workers` setting; one per core)",
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=5.0,
        help="mixed load at the same rate before measuring (fills the connection pool and "
        "each connection's prepared statements, as on a server that has been running)",
    )
    args = parser.parse_args()

    name = f"berth_apibench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    port = _free_port()
    env = {
        **os.environ,
        "BERTH_DB_URL": url,
        "BERTH_LISTEN_PORT": str(port),
        "BERTH_LOOPS": "[]",
        "BERTH_WORKERS": str(args.workers),
        "BERTH_LOG_LEVEL": "WARNING",
        "BERTH_SECRET_KEY": "bench-secret-key-0123456789",
    }
    proc = None
    try:
        await migrate.upgrade(url)
        admin_cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "client.cli.main",
            "manager",
            "create-admin",
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        token = (await admin_cli.communicate())[0].decode().strip()
        project_ids = await _seed(url, rows=args.rows)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "client.cli.main",
            "manager",
            "serve",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        await _wait(base)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            baseline = await _run(
                http, args.rate, args.seconds, lambda: ("GET", base + "/healthz", None)
            )

            def mixed() -> tuple[str, str, object]:
                roll = random.random()
                if roll < 0.2:
                    return (
                        "POST",
                        base + "/api/v1/projects",
                        {"name": f"p-{uuid.uuid4().hex[:12]}"},
                    )
                if roll < 0.6:
                    pid = random.choice(project_ids)
                    return ("GET", f"{base}/api/v1/projects/{pid}", None)
                return ("GET", base + "/api/v1/projects?limit=50&name=bench-", None)

            if args.warmup_seconds > 0:
                await _run(http, args.rate, args.warmup_seconds, mixed)
            mixed_result = await _run(http, args.rate, args.seconds, mixed)
        print(
            json.dumps(
                {
                    "rows": {"projects": args.rows, "users": args.rows},
                    "rate_per_s": args.rate,
                    "seconds": args.seconds,
                    "warmup_seconds": args.warmup_seconds,
                    "workers": args.workers,
                    "baseline_healthz": baseline,
                    "api": mixed_result,
                },
                indent=2,
            )
        )
    finally:
        if proc is not None:
            proc.terminate()
            await proc.wait()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _seed(url: str, *, rows: int) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        domain = await conn.fetchval("SELECT id FROM domains WHERE name='default'")
        projects = [(uuid.uuid4(), domain, f"bench-{i:07d}") for i in range(rows)]
        await conn.copy_records_to_table(
            "projects",
            records=[(p, d, n, "", True) for p, d, n in projects],
            columns=["id", "domain_id", "name", "description", "is_active"],
        )
        await conn.copy_records_to_table(
            "users",
            records=[
                (uuid.uuid4(), domain, f"bench-user-{i:07d}", "", "user", True)
                for i in range(rows)
            ],
            columns=["id", "domain_id", "username", "full_name", "role", "is_active"],
        )
        # Measure the steady state of a database that holds these rows, not the minutes after
        # a bulk load: vacuum sets the visibility map and hint bits (otherwise the first reads
        # of each page write it back), and the checkpoint flushes the load's dirty pages now
        # instead of in a burst of writes and fsyncs during the measurement.
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
        return [str(p) for p, _, _ in random.sample(projects, min(rows, 5000))]
    finally:
        await conn.close()


async def _wait(base: str) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(base + "/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("manager did not start")


async def _run(
    http: aiohttp.ClientSession, rate: float, seconds: float, make
) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Open-loop load: requests start on a fixed schedule whatever the latency (no coordinated
    omission); latency is measured from the scheduled start."""
    latencies: dict[str, list[float]] = {}
    errors = 0
    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)

    async def one(at: float, method: str, url: str, body: object) -> None:
        nonlocal errors
        async with http.request(method, url, json=body) as resp:
            await resp.read()
            if resp.status >= 400:
                errors += 1
        op = _op_name(method, url)
        latencies.setdefault(op, []).append(time.perf_counter() - at)

    for i in range(n):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        method, url, body = make()
        tasks.append(asyncio.create_task(one(at, method, url, body)))
    await asyncio.gather(*tasks)
    out: dict[str, object] = {"requests": n, "errors": errors}
    for op, values in sorted(latencies.items()):
        values.sort()
        out[op] = {
            "count": len(values),
            "p50_ms": round(values[len(values) // 2] * 1000, 2),
            "p95_ms": round(values[int(len(values) * 0.95) - 1] * 1000, 2),
            "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 2),
        }
    return out


def _op_name(method: str, url: str) -> str:
    if "/api/v1/" not in url:
        return f"{method} healthz"
    path = url.split("/api/v1/")[1].split("?")[0]
    return f"{method} projects/{{id}}" if "/" in path else f"{method} {path}"


if __name__ == "__main__":
    asyncio.run(main())
