"""Prometheus metrics of one agent process (`GET /metrics`).

One registry per app (no global state), so several agents in one test process never share
values. Request latency is measured by `metrics_middleware` (outermost, so it sees the final
status, 401s included); every gauge is read from the node's state when scraped, so it can never
drift from what `/v1/node` reports:

- containers by state (`running`, `exited`, `unknown`; each state always present),
- capacity and allocated amount of every slot the node offers (`cpu`, `mem` in bytes, one per
  device slot such as `cuda.device`, shares such as `cuda.shares`),
- whether the container runtime answers,
- host CPU (busy share since the previous scrape, from /proc/stat) and memory (MemTotal minus
  MemAvailable).

Like the manager's `/metrics`, the endpoint needs no cluster secret: scrapers do not carry it,
and the values hold no secrets, ids or user data. The agent port must stay on the cluster
network anyway (every other route is authenticated by the cluster secret).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Gauge,
    Histogram,
    generate_latest,
)

from agent.allocator import ZERO
from agent.api import NODE_KEY
from agent.contract import ContainerState
from agent.node import Node

PROC_STAT = Path("/proc/stat")
PROC_MEMINFO = Path("/proc/meminfo")


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "berth_agent_http_request_duration_seconds",
            "Agent API latency by route and status",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.containers = Gauge(
            "berth_agent_containers",
            "Containers on this node by state",
            ["state"],
            registry=self.registry,
        )
        self.slot_capacity = Gauge(
            "berth_agent_slot_capacity",
            "Amount of each slot this node offers",
            ["slot"],
            registry=self.registry,
        )
        self.slot_allocated = Gauge(
            "berth_agent_slot_allocated",
            "Amount of each slot held by containers",
            ["slot"],
            registry=self.registry,
        )
        self.runtime_up = Gauge(
            "berth_agent_runtime_up",
            "1 when the container runtime answers, else 0",
            registry=self.registry,
        )
        self.cpu_used = Gauge(
            "berth_agent_node_cpu_used_ratio",
            "Busy share of the host's CPUs since the previous scrape (0-1)",
            registry=self.registry,
        )
        self.mem_total = Gauge(
            "berth_agent_node_memory_total_bytes",
            "Host memory (MemTotal)",
            registry=self.registry,
        )
        self.mem_used = Gauge(
            "berth_agent_node_memory_used_bytes",
            "Host memory in use (MemTotal - MemAvailable)",
            registry=self.registry,
        )
        self._cpu_sample = _cpu_times()

    def refresh(self, node: Node) -> None:
        by_state = dict.fromkeys(ContainerState, 0)
        for info in node.list_containers():
            by_state[info.state] += 1
        for state, count in by_state.items():
            self.containers.labels(state.value).set(count)
        capacity = node.allocator.capacity()
        allocated: dict[str, Decimal] = dict.fromkeys(capacity, ZERO)
        for allocation in node.allocator.holders().values():
            for slot, amount in allocation.slots().items():
                allocated[slot] = allocated.get(slot, ZERO) + amount
        for slot, amount in capacity.items():
            self.slot_capacity.labels(slot).set(float(amount))
        for slot, amount in allocated.items():
            self.slot_allocated.labels(slot).set(float(amount))
        self.runtime_up.set(1 if node.health.status == "ok" else 0)
        self._refresh_host()

    def _refresh_host(self) -> None:
        sample = _cpu_times()
        if sample is not None and self._cpu_sample is not None:
            busy = sample[0] - self._cpu_sample[0]
            total = sample[1] - self._cpu_sample[1]
            if total > 0:
                self.cpu_used.set(busy / total)
        if sample is not None:
            self._cpu_sample = sample
        memory = _meminfo()
        if "MemTotal" in memory and "MemAvailable" in memory:
            self.mem_total.set(memory["MemTotal"])
            self.mem_used.set(memory["MemTotal"] - memory["MemAvailable"])

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS_KEY = web.AppKey("berth_agent_metrics", AgentMetrics)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs; None where /proc/stat is missing."""
    try:
        first = PROC_STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(values)
    return total - values[3] - values[4], total


def _meminfo() -> dict[str, int]:
    try:
        lines = PROC_MEMINFO.read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * (1024 if parts[-1] == "kB" else 1)
    return out


def metrics_middleware(metrics: AgentMetrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        status = 499  # the client went away before an answer
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except Exception:
            status = 500
            raise
        finally:
            metrics.latency.labels(request.method, route, str(status)).observe(
                time.perf_counter() - started
            )

    return middleware


async def metrics_handler(request: web.Request) -> web.Response:
    metrics = request.app[METRICS_KEY]
    node = request.app.get(NODE_KEY)
    if node is not None:
        metrics.refresh(node)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
