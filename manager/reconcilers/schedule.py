"""Schedule: one cycle, in numbered phases, timed.

1. snapshot — read pending sessions, nodes, ledgers, quotas and usage (one short read tx);
2. plan     — the pure planner (manager.scheduler.schedule), no I/O;
3. commit   — the guarded commit (manager.services.scheduling.commit_plan), one tx;
4. verdicts — store why every unplaced session waits (one tx);
5. wake     — tell the dispatch loop there is work.

Any manager may run it at any time: the commit re-checks against locked rows."""

from __future__ import annotations

import logging
import time
from collections import Counter

from manager.reconcilers.context import LoopContext
from manager.scheduler import schedule
from manager.services import scheduling

log = logging.getLogger("berth.manager.scheduler")


async def schedule_step(ctx: LoopContext) -> bool:
    started = time.perf_counter()
    now = ctx.clock()
    async with ctx.db_factory() as db, db.begin():
        snapshot = await scheduling.build_snapshot(db)
    if not snapshot.pending:
        return False
    t_snapshot = time.perf_counter()
    plan = schedule(snapshot, now=now)
    t_plan = time.perf_counter()
    async with ctx.db_factory() as db, db.begin():
        result = await scheduling.commit_plan(db, plan, now=now)
    t_commit = time.perf_counter()
    async with ctx.db_factory() as db, db.begin():
        await scheduling.write_verdicts(db, plan, now=now)
    elapsed = time.perf_counter() - started
    ctx.metrics.scheduler_cycle.observe(elapsed)
    ctx.metrics.placements.inc(len(result.committed))
    # One pass over the queue: what stays pending per group after this cycle's commits.
    committed = set(result.committed)
    waiting = Counter(s.resource_group for s in snapshot.pending if s.session_id not in committed)
    for group in snapshot.resource_groups:
        ctx.metrics.queue_length.labels(group).set(waiting[group])
    log.info(
        "schedule cycle",
        extra={
            "pending": len(snapshot.pending),
            "placed": len(result.committed),
            "skipped": len(result.skipped),
            "snapshot_ms": round((t_snapshot - started) * 1000, 1),
            "plan_ms": round((t_plan - t_snapshot) * 1000, 1),
            "commit_ms": round((t_commit - t_plan) * 1000, 1),
        },
    )
    if result.committed:
        ctx.wake("dispatch")
    # Run again at once only if the commit lost races; otherwise wait for a change.
    return bool(result.skipped) and bool(result.committed)
