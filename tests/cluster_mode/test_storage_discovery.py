"""The cluster's managers know the storage proxy only from etcd (no BERTH_STORAGE_PROXY_URL):
both use it, a killed proxy's key expires with its lease and the managers stop using it, and a
restarted proxy is used again by both."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.cluster_mode.conftest import wait_until_async
from tests.cluster_mode.harness import Cluster

pytestmark = pytest.mark.slow


async def create_folder(api: httpx.AsyncClient) -> httpx.Response:
    body = {"name": f"disc-{uuid.uuid4().hex[:8]}", "volume": "local"}
    return await api.post("/api/v1/vfolders", json=body)


async def test_managers_follow_the_proxy_registered_in_etcd(cluster: Cluster) -> None:
    assert "BERTH_STORAGE_PROXY_URL" not in cluster.manager_env(1)
    assert cluster.proxy_registered()
    proxy = cluster.procs["storage-proxy"]
    async with cluster.client(1) as m1, cluster.client(2) as m2:
        for api in (m1, m2):
            resp = await create_folder(api)
            assert resp.status_code == 201, resp.text
        try:
            proxy.kill9()  # a crash: the key stays until its lease (4 s) expires
            await wait_until_async(
                lambda: asyncio.to_thread(lambda: not cluster.proxy_registered()),
                timeout_s=15,
                what="the killed proxy's registration to expire",
            )

            async def refused() -> bool:
                answers = [await create_folder(api) for api in (m1, m2)]
                return all(
                    r.status_code == 503 and r.json()["code"] == "storage_unavailable"
                    for r in answers
                )

            await wait_until_async(refused, timeout_s=15, what="both managers to drop the proxy")
        finally:
            if not proxy.running:
                proxy.start()
        await wait_until_async(
            lambda: asyncio.to_thread(cluster.proxy_registered),
            timeout_s=30,
            what="the restarted proxy to register",
        )

        async def served() -> bool:
            answers = [await create_folder(api) for api in (m1, m2)]
            return all(r.status_code == 201 for r in answers)

        await wait_until_async(served, timeout_s=15, what="both managers to use it again")
