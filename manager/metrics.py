"""Prometheus metrics of one manager process, kept in a per-app registry (no global state), so
several apps in one test process never share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        )
        self.sessions_by_status = Gauge(
            "berth_sessions", "Sessions by status", ["status"], registry=self.registry
        )
        self.node_utilisation = Gauge(
            "berth_node_slot_used_ratio",
            "Used share of node capacity per slot",
            ["node", "slot"],
            registry=self.registry,
        )
