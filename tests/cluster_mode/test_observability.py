"""Every metric docs/operations.md lists is exported by the process it is listed for: both
managers, an agent (scraped over the cluster network, without the cluster secret) and the storage
proxy's internal API; the managers' cluster-wide gauges agree between replicas."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.cluster_mode.conftest import wait_until_async
from tests.cluster_mode.harness import AGENT_PORT, PROXY_INTERNAL_PORT, REPO, Cluster

pytestmark = pytest.mark.slow


def documented_metrics(process: str = "Manager") -> list[str]:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    part = section.split(f"### {process}\n", 1)[1].split("\n### ", 1)[0]
    names = re.findall(r"^\| `(berth_[a-z_]+)` \|", part, flags=re.M)
    assert len(names) >= 6, f"the {process} metrics table was found"
    return names


def forwarded(cluster: Cluster, name: str, target: str) -> httpx.AsyncClient:
    """A client for `target` inside the cluster, through a unix-socket forwarder in ctl."""
    if f"fwd-{name}" not in cluster.procs:
        cluster._forward(name, target)
    return httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(Path(cluster.socket(name)))),
        base_url=f"http://{name}",
        timeout=30,
    )


def samples(text: str, name: str) -> dict[str, float]:
    """`{labels: value}` of one metric family (histograms by their _count samples)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:_count|_total)?(\{{[^}}]*\}})? ([0-9.e+-]+)$", line)
        if match:
            out[match.group(1) or ""] = float(match.group(2))
    return out


async def test_documented_metrics_are_exported_by_every_manager(cluster: Cluster) -> None:
    async with cluster.client(1, token="") as m1, cluster.client(2, token="") as m2:
        # Some traffic so that per-request families have samples on both.
        for api in (m1, m2):
            assert (await api.get("/api/v1/sessions")).status_code == 401

        async def gauges_filled() -> bool:
            texts = [(await api.get("/metrics")).text for api in (m1, m2)]
            return all(samples(t, "berth_sessions") for t in texts)

        await wait_until_async(gauges_filled, timeout_s=30, what="gauges refreshed")
        texts = {m: (await api.get("/metrics")).text for m, api in ((1, m1), (2, m2))}
    for name in documented_metrics():
        for m, text in texts.items():
            assert re.search(rf"^# TYPE {name} ", text, flags=re.M), f"{name} missing on m{m}"
    errors = samples(texts[1], "berth_http_errors")
    assert any("unauthenticated" in labels for labels in errors), errors
    # Cluster-wide gauges describe the same database on both replicas.
    nodes = [samples(t, "berth_node_slot_used_ratio") for t in texts.values()]
    assert nodes[0].keys() == nodes[1].keys() and nodes[0]
    assert all(f'node="{cluster.node_id(i)}"' in " ".join(nodes[0]) for i in (1, 2, 3))


async def test_documented_metrics_are_exported_by_agents_and_the_proxy(cluster: Cluster) -> None:
    agent = forwarded(cluster, "a1", f"{cluster.agent_ip(1)}:{AGENT_PORT}")
    proxy = forwarded(cluster, "proxy-internal", f"{cluster.ctl_ip}:{PROXY_INTERNAL_PORT}")
    async with agent, proxy:
        agent_text = (await agent.get("/metrics")).text  # no cluster secret
        proxy_resp = await proxy.get("/metrics")
        assert (await agent.get("/v1/node")).status_code == 401, "the rest stays guarded"
    assert proxy_resp.status_code == 200
    for process, text in (("Agent", agent_text), ("Storage proxy", proxy_resp.text)):
        for name in documented_metrics(process):
            family = name.removesuffix("_total")
            assert re.search(rf"^# TYPE {family}(_total)? ", text, flags=re.M), (process, name)
    capacity = samples(agent_text, "berth_agent_slot_capacity")
    assert capacity['{slot="cuda.device"}'] == cluster.gpus_per_node, capacity
    assert samples(proxy_resp.text, "berth_storage_volume_capacity_bytes")['{volume="local"}'] > 0
