"""Prometheus metrics of one manager process, kept in a per-app registry (no global state), so
several apps in one test process never share counters."""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

# With several API workers (`workers` > 1) each process writes its samples to files in this
# directory and /metrics, on whichever worker answers, merges them: counters and histograms
# add up; gauges come from worker 0, which alone runs the loops that set them.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ONE_WRITER: Final = "livemostrecent"


class ApiMetrics:
    """Per-app registry, so several apps in one process (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "berth_http_request_duration_seconds",
            "API latency by route and status",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.errors = Counter(
            "berth_http_errors_total", "API errors by code", ["code"], registry=self.registry
        )
        self.scheduler_cycle = Histogram(
            "berth_scheduler_cycle_seconds",
            "Time of one scheduling cycle (snapshot, plan, commit)",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.placements = Counter(
            "berth_scheduler_placements_total", "Sessions placed", registry=self.registry
        )
        self.queue_length = Gauge(
            "berth_queue_length",
            "Pending sessions per resource group",
            ["resource_group"],
            registry=self.registry,
            multiprocess_mode=ONE_WRITER,
        )
        self.sessions_by_status = Gauge(
            "berth_sessions",
            "Sessions by status",
            ["status"],
            registry=self.registry,
            multiprocess_mode=ONE_WRITER,
        )
        self.node_utilisation = Gauge(
            "berth_node_slot_used_ratio",
            "Used share of node capacity per slot",
            ["node", "slot"],
            registry=self.registry,
            multiprocess_mode=ONE_WRITER,
        )

    def exposition(self) -> bytes:
        """The text format of this process's metrics, or of every worker's when there are
        several."""
        directory = os.environ.get(MULTIPROC_ENV)
        if not directory:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)
