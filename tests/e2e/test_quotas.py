"""Quotas and usage end to end: limits enforced inside the scheduler's commit, why-pending names
the quota, absolute violations are refused at once, and usage is accounted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import Stack, wait_for
from tests.e2e.test_sessions import batch, finished

pytestmark = [pytest.mark.docker, pytest.mark.slow]


async def _default_project(stack: Stack) -> str:
    async with stack.client() as api:
        me = (await api.get("/api/v1/auth/me")).json()
    return next(iter(me["project_roles"]))


async def test_a_project_gpu_quota_queues_the_excess_and_names_the_limit(stack: Stack) -> None:
    project = await _default_project(stack)
    async with stack.client() as api:
        resp = await api.put(
            f"/api/v1/quotas/project/{project}", json={"slots": {"cuda.device": 2}}
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["slots"] == {"cuda.device": "2"}

        refused = await api.post(
            "/api/v1/sessions", json=batch("true", resources={"cuda.device": 3})
        )
        assert refused.status_code == 400
        assert refused.json()["code"] == "quota_exceeded"
        assert "project" in refused.json()["message"]

        holder = (
            await api.post(
                "/api/v1/sessions",
                json=batch("sleep 30", type="interactive", resources={"cuda.device": 2}),
            )
        ).json()
        await wait_for(api, f"/api/v1/sessions/{holder['id']}", lambda s: s["status"] == "running")
        waiter = (
            await api.post(
                "/api/v1/sessions", json=batch("echo done", resources={"cuda.device": 1})
            )
        ).json()
        why = await wait_for(
            api, f"/api/v1/sessions/{waiter['id']}/why", lambda v: v["code"] == "quota_exceeded"
        )
        assert f"project:{project}" in str(why["details"]) or "project" in why["message"]
        mine = (await api.get("/api/v1/usage/quota")).json()["items"]
        project_line = next(q for q in mine if q["scope"] == f"project:{project}")
        assert project_line["used"]["cuda.device"] == "2"
        assert project_line["slots"]["cuda.device"] == "2"

        # Raising the limit lets the waiting session start without touching it.
        await api.put(f"/api/v1/quotas/project/{project}", json={"slots": {"cuda.device": 3}})
        await api.delete(f"/api/v1/sessions/{holder['id']}")
    done = await finished(stack, waiter["id"])
    assert done["result"] == "success"
    async with stack.client() as api:
        await api.delete(f"/api/v1/quotas/project/{project}")


async def test_max_concurrent_sessions_is_enforced(stack: Stack) -> None:
    project = await _default_project(stack)
    async with stack.client() as api:
        me = (await api.get("/api/v1/auth/me")).json()["user"]["id"]
        await api.put(
            f"/api/v1/quotas/user_in_project/{me}",
            params={"project_id": project},
            json={"max_concurrent_sessions": 1},
        )
        first = (await api.post("/api/v1/sessions", json=batch("sleep 3"))).json()
        second = (await api.post("/api/v1/sessions", json=batch("true"))).json()
        why = await wait_for(
            api,
            f"/api/v1/sessions/{second['id']}/why",
            lambda v: v["code"] in ("quota_exceeded", "not_pending"),
        )
        first_now = (await api.get(f"/api/v1/sessions/{first['id']}")).json()
        if why["code"] == "not_pending":  # only possible once the first one has finished
            assert first_now["status"] in ("terminating", "terminated")
        else:
            assert "sessions" in str(why)
    assert (await finished(stack, first["id"]))["result"] == "success"
    assert (await finished(stack, second["id"]))["result"] == "success"
    async with stack.client() as api:
        await api.delete(f"/api/v1/quotas/user_in_project/{me}", params={"project_id": project})


async def test_usage_reports_gpu_hours_per_project_once(stack: Stack) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    async with stack.client() as api:
        job = (
            await api.post("/api/v1/sessions", json=batch("sleep 2", resources={"cuda.device": 2}))
        ).json()
    await finished(stack, job["id"])
    async with stack.client() as api:
        report = (
            await api.get(
                "/api/v1/usage",
                params={
                    "start": start.isoformat(),
                    "group_by": "project",
                },
            )
        ).json()
        again = (
            await api.get(
                "/api/v1/usage",
                params={
                    "start": start.isoformat(),
                    "group_by": "project",
                },
            )
        ).json()
    line = next(i for i in report["items"] if i["name"] == "default")
    gpu_hours = float(line["gpu_hours"]["cuda.device"])
    # 2 GPUs for a few seconds: more than zero, far less than a minute of 2 GPUs each.
    assert 2 * 1 / 3600 < gpu_hours < 2 * 60 / 3600 * 3
    assert line["sessions"] >= 1
    assert report["items"] == again["items"] or report["end"] != again["end"]


async def test_quota_admin_rules(stack: Stack) -> None:
    async with stack.client() as api:
        project = await _default_project(stack)
        user = (await api.post("/api/v1/users", json={"username": "quota-user"})).json()
        await api.put(f"/api/v1/projects/{project}/members/{user['id']}", json={"role": "member"})
        token = (await api.post("/api/v1/tokens", json={"user_id": user["id"]})).json()["token"]
        bad = await api.put("/api/v1/quotas/galaxy/" + project, json={})
        assert bad.status_code == 404
        bad = await api.put(f"/api/v1/quotas/project/{project}", json={"slots": {"cpu": "x"}})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_resources"
    async with stack.client(token) as member:
        denied = await member.put(f"/api/v1/quotas/project/{project}", json={"slots": {"cpu": 1}})
        assert denied.status_code == 403
        mine = await member.get("/api/v1/usage/quota")
        assert mine.status_code == 200
