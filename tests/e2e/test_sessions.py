"""Sessions end to end: a manager with its loops, an agent with fake GPUs, the real Docker
engine. Create → schedule → dispatch → run → exit → terminated, and the unhappy paths."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.conftest import Stack, dump_logs, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "berth/busybox:test"


def batch(command: str, **extra: Any) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "type": "batch",
        "command": ["sh", "-c", command],
        "resources": {"cpu": "0.5", "mem": "64m", **extra.pop("resources", {})},
        **extra,
    }


async def finished(stack: Stack, session_id: str, timeout_s: float = 60) -> dict[str, Any]:
    async with stack.client() as api:
        try:
            return await wait_for(
                api,
                f"/api/v1/sessions/{session_id}",
                lambda s: s["status"] in ("terminated", "error", "cancelled"),
                timeout_s=timeout_s,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{dump_logs(stack)}") from None


async def test_the_node_registers_with_its_fake_gpus(stack: Stack) -> None:
    async with stack.client() as api:
        page = await wait_for(api, "/api/v1/agents", lambda p: len(p["items"]) == 1)
    node = page["items"][0]
    assert node["status"] == "alive"
    assert node["capacity"]["cuda.device"] == "4"
    assert len([d for d in node["devices"] if d["slot_name"] == "cuda.device"]) == 4


async def test_a_batch_job_runs_and_its_exit_code_decides_the_result(stack: Stack) -> None:
    async with stack.client() as api:
        ok = (await api.post("/api/v1/sessions", json=batch("echo hello-berth; exit 0"))).json()
        bad = (await api.post("/api/v1/sessions", json=batch("echo oops; exit 3"))).json()
    done_ok, done_bad = await finished(stack, ok["id"]), await finished(stack, bad["id"])
    assert (done_ok["status"], done_ok["result"], done_ok["exit_code"]) == (
        "terminated",
        "success",
        0,
    )
    assert (done_bad["status"], done_bad["result"], done_bad["exit_code"]) == (
        "terminated",
        "failure",
        3,
    )
    async with stack.client() as api:
        hist = (await api.get(f"/api/v1/sessions/{ok['id']}/history")).json()["items"]
        statuses = [h["status"] for h in hist]
        assert statuses == [
            "pending",
            "scheduled",
            "preparing",
            "running",
            "terminating",
            "terminated",
        ] or statuses == ["pending", "scheduled", "preparing", "terminating", "terminated"]
        node = (await api.get("/api/v1/agents")).json()["items"][0]
    assert node["allocated"] == {}, "every allocation was released"


async def test_gpus_are_isolated_between_concurrent_sessions(stack: Stack) -> None:
    script = "echo devices=$CUDA_VISIBLE_DEVICES; cat /etc/berth/devices.json; sleep 2"
    async with stack.client() as api:
        first = (
            await api.post("/api/v1/sessions", json=batch(script, resources={"cuda.device": 2}))
        ).json()
        second = (
            await api.post("/api/v1/sessions", json=batch(script, resources={"cuda.device": 2}))
        ).json()
    a, b = await finished(stack, first["id"]), await finished(stack, second["id"])
    assert a["result"] == b["result"] == "success", dump_logs(stack)
    devices_a = set(a["container_list"][0]["devices"]["cuda.device"])
    devices_b = set(b["container_list"][0]["devices"]["cuda.device"])
    assert len(devices_a) == len(devices_b) == 2
    assert not devices_a & devices_b


async def test_a_session_waits_when_gpus_are_busy_and_says_why(stack: Stack) -> None:
    async with stack.client() as api:
        hog = (
            await api.post(
                "/api/v1/sessions",
                json=batch("sleep 30", type="interactive", resources={"cuda.device": 3}),
            )
        ).json()
        await wait_for(api, f"/api/v1/sessions/{hog['id']}", lambda s: s["status"] == "running")
        waiter = (
            await api.post(
                "/api/v1/sessions", json=batch("echo ran", resources={"cuda.device": 2})
            )
        ).json()
        why = await wait_for(
            api, f"/api/v1/sessions/{waiter['id']}/why", lambda v: v["code"] == "no_node_fits"
        )
        assert "cuda.device" in why["message"]
        assert why["queue_position"] is not None
        stopped = await api.delete(f"/api/v1/sessions/{hog['id']}")
        assert stopped.status_code == 200
    done = await finished(stack, waiter["id"])
    assert done["result"] == "success"
    hog_done = await finished(stack, hog["id"])
    assert hog_done["status"] == "terminated" and hog_done["status_reason"] == "user_terminated"


async def test_logs_are_streamed_from_the_node(stack: Stack) -> None:
    async with stack.client() as api:
        created = (
            await api.post("/api/v1/sessions", json=batch("for i in 1 2 3; do echo line-$i; done"))
        ).json()
        await finished(stack, created["id"])
        resp = await api.get(f"/api/v1/sessions/{created['id']}/logs")
    assert resp.status_code == 200
    assert "line-1\nline-2\nline-3" in resp.text


async def test_events_stream_every_transition_until_the_end(stack: Stack) -> None:
    async with stack.client() as api:
        created = (await api.post("/api/v1/sessions", json=batch("true"))).json()
        statuses: list[str] = []
        async with api.stream("GET", f"/api/v1/sessions/{created['id']}/events") as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    statuses.append(line.split('"status": "')[1].split('"')[0])
    assert statuses[0] == "pending" and statuses[-1] == "terminated"


async def test_cancelling_a_pending_session_never_starts_it(stack: Stack) -> None:
    async with stack.client() as api:
        created = (
            await api.post(
                "/api/v1/sessions", json=batch("true", resources={"cuda.device": 4}, priority=-5)
            )
        ).json()
        resp = await api.delete(f"/api/v1/sessions/{created['id']}")
        body = resp.json()
    assert resp.status_code == 200
    assert body["status"] in ("cancelled", "terminating")
    done = await finished(stack, created["id"])
    assert done["status"] in ("cancelled", "terminated")


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (batch("true", resources={"tpu.device": 1}), 400, "unknown_slot"),
        (batch("true", resources={"cuda.device": 9}), 400, "request_too_large"),
        (batch("true", resources={"cpu": "-1"}), 400, "invalid_resources"),
        ({**batch("true"), "image": "no/such:image"}, 400, "image_not_found"),
        ({**batch("true"), "resource_group": "nope"}, 403, "resource_group_denied"),
        (
            {**batch("true"), "mounts": [{"folder": "x", "path": "/data"}]},
            400,
            "mounts_unavailable",
        ),
        ({**batch("true"), "bogus": 1}, 422, "validation_error"),
    ],
)
async def test_bad_session_requests_are_refused_and_nothing_is_queued(
    stack: Stack, payload: dict[str, Any], status: int, code: str
) -> None:
    async with stack.client() as api:
        before = (
            await api.get("/api/v1/sessions", params={"all": "true", "limit": "1000"})
        ).json()
        resp = await api.post("/api/v1/sessions", json=payload)
        after = (await api.get("/api/v1/sessions", params={"all": "true", "limit": "1000"})).json()
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code
    assert len(after["items"]) == len(before["items"])


async def test_parallel_creates_never_overcommit_the_gpus(stack: Stack) -> None:
    async with stack.client() as api:
        created = await asyncio.gather(
            *(
                api.post("/api/v1/sessions", json=batch("sleep 1", resources={"cuda.device": 1}))
                for _ in range(8)
            )
        )
        ids = [r.json()["id"] for r in created]
        peak = 0
        deadline = asyncio.get_running_loop().time() + 120
        while True:
            assert asyncio.get_running_loop().time() < deadline, dump_logs(stack)
            node = (await api.get("/api/v1/agents")).json()["items"][0]
            peak = max(peak, int(node["allocated"].get("cuda.device", "0")))
            assert peak <= 4
            states = [(await api.get(f"/api/v1/sessions/{i}")).json()["status"] for i in ids]
            if all(s in ("terminated", "error") for s in states):
                break
            await asyncio.sleep(0.2)
    results = [(await finished(stack, i))["result"] for i in ids]
    assert results == ["success"] * 8


async def test_metrics_report_sessions_by_status_and_node_utilisation(stack: Stack) -> None:
    async with stack.client() as api:
        created = (await api.post("/api/v1/sessions", json=batch("true"))).json()
    await finished(stack, created["id"])
    async with stack.client() as api:

        async def terminated_count() -> tuple[float, str]:
            text = (await api.get("/metrics")).text
            for line in text.splitlines():
                if line.startswith('berth_sessions{status="terminated"}'):
                    return float(line.split()[-1]), text
            return 0.0, text

        # The gauges loop refreshes every 10 s; poll until it has seen the finished session.
        deadline = asyncio.get_running_loop().time() + 30
        count, text = await terminated_count()
        while count < 1:
            assert asyncio.get_running_loop().time() < deadline, text[-2000:]
            await asyncio.sleep(0.5)
            count, text = await terminated_count()
    assert 'berth_node_slot_used_ratio{node="' in text
    assert "berth_scheduler_cycle_seconds_count" in text
    assert "berth_http_request_duration_seconds_bucket{" in text
