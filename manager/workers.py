"""Several API worker processes on one listen port (`workers` > 1).

One Python process serves requests on one core; on a machine with more, a single manager
saturates its event loop long before the database does, and every request queues behind
the others (the API benchmark's tail went from about 100 ms to 20 ms with two workers on two
cores). Each worker is a whole manager (`run_manager` with `workers = 1`) bound with
SO_REUSEPORT, so the kernel spreads connections over them. Worker 0 runs the configured
background loops; the others run none and send their loop wake-ups over the event bus. The
supervisor only starts, watches and stops them: if one dies, it stops the rest and exits
non-zero, so the service manager (systemd, Docker's restart policy) restarts the whole set
rather than leaving a host with a silently smaller pool."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import threading
from multiprocessing.process import BaseProcess

from manager import logs
from manager.config import ManagerConfig
from manager.metrics import MULTIPROC_ENV

log = logging.getLogger("berth.manager.workers")
STOP_GRACE_S = 10.0


def worker_configs(config: ManagerConfig) -> list[ManagerConfig]:
    """What each worker runs: worker 0 the configured loops, the others none."""
    first = config.model_copy(update={"workers": 1})
    rest = config.model_copy(update={"workers": 1, "loops": []})
    return [first] + [rest] * (config.workers - 1)


def supervise(config: ManagerConfig) -> int:
    """Run `config.workers` workers until SIGTERM/SIGINT or until one exits; the exit code."""
    logs.configure(json_logs=config.log_json, level=config.log_level)
    metrics_dir = tempfile.mkdtemp(prefix="berth-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the spawned workers
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: no forked event loop
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda _sig, _frame: stop.set())
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    procs: list[BaseProcess] = []
    try:
        for index, worker in enumerate(worker_configs(config)):
            proc = spawn.Process(target=_worker_main, args=(worker, index), name=f"worker-{index}")
            proc.start()
            procs.append(proc)
        log.info(
            "manager workers started",
            extra={"workers": len(procs), "pids": [p.pid for p in procs]},
        )
        failed = _wait_for_stop_or_exit(procs, stop)
        if failed is not None:
            log.error(
                "a manager worker exited; stopping the others",
                extra={"worker": failed.name, "exitcode": failed.exitcode},
            )
        return 0 if failed is None else 1
    finally:
        _stop_all(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _wait_for_stop_or_exit(procs: list[BaseProcess], stop: threading.Event) -> BaseProcess | None:
    """Block until a stop signal (None) or until a worker exits (that worker)."""
    sentinels = {proc.sentinel: proc for proc in procs}
    while not stop.is_set():
        ready = multiprocessing.connection.wait(list(sentinels), timeout=0.5)
        if ready:
            return sentinels[ready[0]]  # type: ignore[index]
    return None


def _stop_all(procs: list[BaseProcess]) -> None:
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)  # aiohttp's graceful shutdown
    for proc in procs:
        proc.join(STOP_GRACE_S)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _worker_main(config: ManagerConfig, index: int) -> None:
    from manager.app import run_manager

    run_manager(config, worker=index, reuse_port=True)
