"""Faults in a real namespaced cluster (two managers, three agents, private PostgreSQL, Redis,
etcd and one private Docker engine): nothing is lost, nothing is allocated twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from cluster.factory import create_config_store
from cluster.leader import current_leader
from manager.leader import ELECTION_NAME
from tests.cluster_mode.conftest import (
    OUTAGE_S,
    batch,
    db_rows,
    wait_all_terminal,
    wait_json,
    wait_until_async,
)
from tests.cluster_mode.harness import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.etcd]


async def etcd_view(cluster: Cluster, prefix: str) -> dict[str, str]:
    store = create_config_store(f"etcd://127.0.0.1:{cluster.etcd_local_port()}/{cluster.prefix}")
    try:
        return await store.get_prefix(prefix)
    finally:
        await store.close()


async def leader(cluster: Cluster) -> str | None:
    store = create_config_store(f"etcd://127.0.0.1:{cluster.etcd_local_port()}/{cluster.prefix}")
    try:
        return await current_leader(store, ELECTION_NAME)
    finally:
        await store.close()


def manager_of(identity: str | None, registered: dict[str, str]) -> int | None:
    """Which manager (1 or 2) an identity belongs to, from its registration's URL port."""
    for raw in registered.values():
        entry = json.loads(raw)
        if entry["id"] == identity:
            return 1 if entry["url"].endswith(":8081") else 2
    return None


async def running_session(cluster: Cluster, *, m: int = 1, **extra: Any) -> dict[str, Any]:
    async with cluster.client(m) as api:
        created = await api.post("/api/v1/sessions", json=batch("sleep 600", **extra))
        assert created.status_code == 201, created.text
        return await wait_json(  # type: ignore[no-any-return]
            api,
            f"/api/v1/sessions/{created.json()['id']}",
            lambda s: s["status"] == "running",
            what="session running",
        )


def docker_ids(cluster: Cluster, node: int, session_id: str) -> list[str]:
    return [
        c["Id"]
        for c in cluster.containers(node)
        if c["Config"]["Labels"].get("ai.berth.session-id") == session_id
    ]


def node_index(cluster: Cluster, node_id: str) -> int:
    return next(i for i in range(1, cluster.agents + 1) if cluster.node_id(i) == node_id)


async def test_nodes_register_and_find_managers_through_etcd(cluster: Cluster) -> None:
    agents = await etcd_view(cluster, "agents/")
    assert sorted(agents) == [f"agents/{cluster.node_id(i)}" for i in (1, 2, 3)]
    assert json.loads(agents[f"agents/{cluster.node_id(2)}"])["url"] == (
        f"http://{cluster.agent_ip(2)}:6011"
    )
    managers = await etcd_view(cluster, "managers/")
    assert len(managers) == 2, managers
    assert manager_of(await leader(cluster), managers) in (1, 2)
    # No agent was given a manager URL: they heartbeat to whatever etcd listed.
    nodes = cluster.agents_by_id(2)
    assert {n["status"] for n in nodes.values()} == {"alive"}


async def test_either_manager_serves_any_request(cluster: Cluster) -> None:
    async with cluster.client(2) as m2, cluster.client(1) as m1:
        created = await m2.post("/api/v1/sessions", json=batch("echo via-m2"))
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        done = await wait_all_terminal(m1, [sid])
        assert done[sid]["result"] == "success", cluster.logs()
        logs = await m1.get(f"/api/v1/sessions/{sid}/logs")
        assert "via-m2" in logs.text


async def test_manager_killed_mid_scheduling_loses_and_duplicates_nothing(
    cluster: Cluster,
) -> None:
    managers = await etcd_view(cluster, "managers/")
    ids: list[str] = []
    async with cluster.client(1) as m1, cluster.client(2) as m2:
        for _ in range(12):
            resp = await m1.post("/api/v1/sessions", json=batch("sleep 1; echo done"))
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        # Mid-scheduling: some are placed, some dispatched, some still pending.
        await wait_json(
            m1,
            "/api/v1/sessions",
            lambda p: any(s["status"] != "pending" for s in p["items"]),
            params={"limit": 200},
            what="the first placement",
        )
        cluster.manager(1).kill9()
        for _ in range(12):
            resp = await m2.post("/api/v1/sessions", json=batch("sleep 1; echo done"))
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        done = await wait_all_terminal(m2, ids, timeout_s=150)
    bad = {
        sid: (s["status"], s["status_reason"], s["status_message"], s["result"])
        for sid, s in done.items()
        if (s["status"], s["result"]) != ("terminated", "success")
    }
    assert not bad, f"{bad}\n{cluster.logs(6000)}"
    # Exactly one container per session: none lost, none started twice.
    rows = await db_rows(
        cluster,
        "SELECT session_id::text AS sid, count(*) AS n FROM session_containers "
        "WHERE session_id::text = ANY($1) GROUP BY session_id",
        ids,
    )
    assert {r["sid"]: r["n"] for r in rows} == dict.fromkeys(ids, 1)
    # The survivor leads once the killed manager's lease ran out.
    await wait_until_async(
        lambda: _leader_is(cluster, managers, 2), timeout_s=30, what="manager 2 leading"
    )
    cluster.manager(1).start()
    cluster.wait_manager(1)


async def _leader_is(cluster: Cluster, managers: dict[str, str], m: int) -> bool:
    identity = await leader(cluster)
    current = await etcd_view(cluster, "managers/")
    return manager_of(identity, {**managers, **current}) == m


async def test_agent_restart_readopts_running_containers(cluster: Cluster) -> None:
    session = await running_session(cluster)
    node = node_index(cluster, session["container_list"][0]["node_id"])
    before = docker_ids(cluster, node, session["id"])
    assert len(before) == 1
    cluster.agent(node).kill9()
    assert docker_ids(cluster, node, session["id"]) == before, "killing the agent kept it"
    cluster.agent(node).start()
    async with cluster.client(2) as api:
        print("readopt: agent restarted", time.monotonic())
        await wait_json(
            api,
            f"/api/v1/agents/{cluster.node_id(node)}",
            lambda a: a["status"] == "alive" and a["containers"] >= 1,
            what="agent back with its container",
        )
        again = (await api.get(f"/api/v1/sessions/{session['id']}")).json()
        assert again["status"] == "running"
        assert docker_ids(cluster, node, session["id"]) == before, "re-adopted, not recreated"
        print("readopt: re-adopted", time.monotonic())
        stopped = await api.delete(f"/api/v1/sessions/{session['id']}")
        assert stopped.status_code == 200, stopped.text
        await wait_all_terminal(api, [session["id"]])
        print("readopt: terminated", time.monotonic())
        node_view = await wait_json(
            api,
            f"/api/v1/agents/{cluster.node_id(node)}",
            lambda a: a["allocated"] == {},
            what="allocation released",
        )
    assert node_view["status"] == "alive"
    assert docker_ids(cluster, node, session["id"]) == []


async def test_killed_agent_sessions_are_lost_then_orphans_reaped(cluster: Cluster) -> None:
    session = await running_session(cluster, m=2)
    node = node_index(cluster, session["container_list"][0]["node_id"])
    container = docker_ids(cluster, node, session["id"])
    assert len(container) == 1
    started = time.monotonic()
    cluster.agent(node).kill9()
    async with cluster.client(1) as api:
        lost = await wait_json(
            api,
            f"/api/v1/sessions/{session['id']}",
            lambda s: s["status"] == "error",
            timeout_s=30,
            what="session marked lost within 30 s",
        )
        detected_after = time.monotonic() - started
        assert lost["status_reason"] == "node_lost", lost
        assert detected_after < 30
        # The container still runs: nobody could reach the node to stop it.
        assert docker_ids(cluster, node, session["id"]) == container
        cluster.agent(node).start()
        # The agent re-adopts it and reports it; the manager has no live allocation for it,
        # so the leader's reaper destroys it.
        await wait_until_async(
            lambda: _no_containers(cluster, node, session["id"]),
            timeout_s=60,
            what="orphan reaped",
        )
        node_view = await wait_json(
            api,
            f"/api/v1/agents/{cluster.node_id(node)}",
            lambda a: a["status"] == "alive" and a["allocated"] == {} and a["containers"] == 0,
            what="node alive with nothing allocated and no container",
        )
    assert node_view["plugin_errors"] == {}


async def _no_containers(cluster: Cluster, node: int, session_id: str) -> bool:
    return docker_ids(cluster, node, session_id) == []


async def _outage(cluster: Cluster, *, stop: Any, start: Any) -> list[str]:
    """Stop a service for OUTAGE_S while both managers keep serving reads and taking creates;
    return the ids created meanwhile."""
    long_running = await running_session(cluster)
    node = node_index(cluster, long_running["container_list"][0]["node_id"])
    container = docker_ids(cluster, node, long_running["id"])
    created: list[str] = []
    stop()
    try:
        loop = asyncio.get_running_loop()
        until = loop.time() + OUTAGE_S
        async with cluster.client(1) as m1, cluster.client(2) as m2:
            while loop.time() < until:
                for api in (m1, m2):
                    listed = await api.get("/api/v1/sessions", params={"limit": 5})
                    assert listed.status_code == 200, listed.text
                    resp = await api.post("/api/v1/sessions", json=batch("echo queued"))
                    assert resp.status_code == 201, resp.text
                    created.append(resp.json()["id"])
                await asyncio.sleep(1)
    finally:
        start()
    async with cluster.client(2) as api:
        done = await wait_all_terminal(api, created, timeout_s=120)
        assert {s["result"] for s in done.values()} == {"success"}
        still = (await api.get(f"/api/v1/sessions/{long_running['id']}")).json()
        assert still["status"] == "running", "containers keep running through the outage"
        assert docker_ids(cluster, node, long_running["id"]) == container
        await api.delete(f"/api/v1/sessions/{long_running['id']}")
        await wait_all_terminal(api, [long_running["id"]])
    return created


async def test_redis_outage(cluster: Cluster) -> None:
    redis = cluster.procs["redis"]
    created = await _outage(cluster, stop=redis.kill9, start=redis.start)
    assert len(created) >= 4


def times_elected(cluster: Cluster) -> int:
    return sum(
        "manager-loops" in line and line.rstrip().endswith(" is leader")
        for m in (1, 2)
        for line in cluster.manager(m).log(tail=10**8).splitlines()
    )


async def test_etcd_outage(cluster: Cluster) -> None:
    etcd = cluster.procs["etcd"]
    elected_before = times_elected(cluster)
    await _outage(cluster, stop=etcd.kill9, start=etcd.start)
    # The outage outlasted the leader's TTL, so it stepped down; a leader is elected again and
    # registrations come back by themselves.
    await wait_until_async(
        lambda: _registered(cluster), timeout_s=30, what="agents and managers re-registered"
    )
    await wait_until_async(
        lambda: _true(times_elected(cluster) > elected_before),
        timeout_s=40,
        what="a new leader term",
    )
    cluster.wait_agents_alive((1, 2, 3), timeout_s=30)


async def _true(value: bool) -> bool:
    return value


async def _registered(cluster: Cluster) -> bool:
    try:
        agents = await etcd_view(cluster, "agents/")
        managers = await etcd_view(cluster, "managers/")
        return len(agents) == 3 and len(managers) == 2 and await leader(cluster) is not None
    except Exception:  # etcd still starting
        return False


async def test_postgres_restart_managers_reconnect(cluster: Cluster) -> None:
    cluster.stop_postgres()
    try:
        async with cluster.client(1) as api:
            down = await api.get("/readyz")
            assert down.status_code == 503, down.text
            assert down.json()["code"], "a JSON error with a stable code, not a traceback"
    finally:
        cluster.start_postgres()
    for m in (1, 2):
        cluster.wait_manager(m, timeout_s=30)
    async with cluster.client(2) as api:
        resp = await api.post("/api/v1/sessions", json=batch("echo after-restart"))
        assert resp.status_code == 201, resp.text
        done = await wait_all_terminal(api, [resp.json()["id"]])
    assert next(iter(done.values()))["result"] == "success"
    cluster.wait_agents_alive((1, 2, 3), timeout_s=30)


async def test_docker_engine_restart_degrades_then_recovers(cluster: Cluster) -> None:
    node = cluster.private_docker_node
    assert node is not None
    path = f"/api/v1/agents/{cluster.node_id(node)}"
    cluster.stop_private_docker()
    async with cluster.client(1) as api:
        try:
            degraded = await wait_json(
                api,
                path,
                lambda a: a["runtime_health"].get("status") != "ok",
                timeout_s=30,
                what="degraded runtime health",
            )
            assert degraded["runtime_health"]["status"] in ("degraded", "down", "error")
        finally:
            cluster.start_private_docker()
        await wait_json(
            api,
            path,
            lambda a: a["runtime_health"].get("status") == "ok" and a["status"] == "alive",
            timeout_s=40,
            what="runtime recovered",
        )
