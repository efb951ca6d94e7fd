"""The registry of every background loop of the manager: name, step, and poll interval.

Each loop also wakes early on a hint (`state.wake(name)`, which reaches other managers through
the event bus). Intervals are the worst-case latency when every hint is lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from manager.reconcilers.base import Loop, Loops
from manager.reconcilers.context import LoopContext
from manager.reconcilers.dispatch import dispatch_step
from manager.reconcilers.gauges import gauges_step
from manager.reconcilers.idle import idle_step
from manager.reconcilers.nodes import liveness_step, reap_step
from manager.reconcilers.schedule import schedule_step
from manager.reconcilers.terminate import terminate_step
from manager.reconcilers.timeouts import timeouts_step
from manager.services.vfolders import vfolder_cleanup_step

Step = Callable[[LoopContext], Awaitable[bool]]

# name → (step, interval_s)
REGISTRY: dict[str, tuple[Step, float]] = {
    "schedule": (schedule_step, 2.0),
    "dispatch": (dispatch_step, 2.0),
    "terminate": (terminate_step, 2.0),
    "liveness": (liveness_step, 5.0),  # well inside the 30 s lost-node budget
    "reap": (reap_step, 15.0),
    "timeouts": (timeouts_step, 5.0),
    "idle": (idle_step, 10.0),
    "gauges": (gauges_step, 10.0),
    "vfolders": (vfolder_cleanup_step, 30.0),
}


def build_loops(ctx: LoopContext, *, only: list[str] | None = None) -> Loops:
    unknown = set(only or ()) - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown loops: {', '.join(sorted(unknown))}")
    return Loops(
        [
            Loop(name=name, step=_bind(step, ctx), interval_s=interval)
            for name, (step, interval) in REGISTRY.items()
            if only is None or name in only
        ]
    )


def _bind(step: Step, ctx: LoopContext) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return await step(ctx)

    return run
