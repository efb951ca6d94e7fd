"""The SDK: retries and errors against a real HTTP server playing a flaky manager, SSE parsing,
and the async and blocking clients against the real stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web

from client.sdk import AsyncBerth, Berth, BerthAPIError, BerthConnectionError, RetryPolicy
from client.sdk.http import parse_sse, retry_after_s
from tests.cli.conftest import IMAGE
from tests.e2e.conftest import Stack
from tests.live import free_port

FAST = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05)


class Flaky:
    """A server that answers each route from a script of (status, body, headers)."""

    def __init__(self, script: list[tuple[int, Any, dict[str, str]]]) -> None:
        self.script = script
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        status, body, headers = self.script[min(self.hits, len(self.script) - 1)]
        self.hits += 1
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)


async def _serve(aiohttp_server: Any, flaky: Flaky) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", flaky.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


async def test_transient_errors_are_retried_until_success(aiohttp_server: Any) -> None:
    flaky = Flaky(
        [
            (503, {"code": "unavailable", "message": "db down", "request_id": "r1"}, {}),
            (502, "bad gateway", {}),
            (
                429,
                {"code": "rate_limited", "message": "slow", "request_id": "r2"},
                {"Retry-After": "0"},
            ),
            (200, {"ok": True}, {}),
        ]
    )
    url = await _serve(aiohttp_server, flaky)
    async with AsyncBerth(url, "t", retry=FAST) as api:
        assert await api.get("/anything") == {"ok": True}
    assert flaky.hits == 4


async def test_errors_carry_the_api_code_and_are_not_retried(aiohttp_server: Any) -> None:
    body = {"code": "quota_exceeded", "message": "project limit", "request_id": "req-9"}
    flaky = Flaky([(400, body, {})])
    url = await _serve(aiohttp_server, flaky)
    async with AsyncBerth(url, "t", retry=FAST) as api:
        with pytest.raises(BerthAPIError) as caught:
            await api.post("/api/v1/sessions", {})
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "quota_exceeded",
        "project limit",
        400,
    )
    assert caught.value.request_id == "req-9"
    assert flaky.hits == 1


async def test_a_post_is_not_retried_after_a_gateway_error(aiohttp_server: Any) -> None:
    flaky = Flaky([(502, "<html>bad gateway</html>", {}), (201, {"id": "x"}, {})])
    url = await _serve(aiohttp_server, flaky)
    async with AsyncBerth(url, "t", retry=FAST) as api:
        with pytest.raises(BerthAPIError) as caught:
            await api.post("/api/v1/sessions", {})
        assert caught.value.code == "http_502" and "bad gateway" in caught.value.message
        assert flaky.hits == 1, "the manager may have acted on it: never sent twice"
        # A GET is idempotent: the same failure is retried.
        flaky.hits = 0
        assert await api.get("/x") == {"id": "x"}
        assert flaky.hits == 2


async def test_retries_give_up_with_the_last_error(aiohttp_server: Any) -> None:
    body = {"code": "unavailable", "message": "still down", "request_id": "r"}
    flaky = Flaky([(503, body, {})])
    url = await _serve(aiohttp_server, flaky)
    async with AsyncBerth(url, "t", retry=FAST) as api:
        with pytest.raises(BerthAPIError) as caught:
            await api.get("/x")
    assert caught.value.code == "unavailable" and flaky.hits == FAST.attempts


async def test_an_unreachable_manager_is_a_connection_error() -> None:
    async with AsyncBerth(f"http://127.0.0.1:{free_port()}", "t", retry=FAST) as api:
        with pytest.raises(BerthConnectionError, match="cannot reach"):
            await api.get("/api/v1/auth/me")


def test_backoff_grows_and_honours_retry_after() -> None:
    policy = RetryPolicy(attempts=6, base_delay_s=1, max_delay_s=8)
    assert all(0.5 <= policy.delay(0) <= 1 for _ in range(20))
    assert all(4 <= policy.delay(3) <= 8 for _ in range(20))
    assert all(policy.delay(10) <= 8 for _ in range(20))
    assert policy.delay(0, retry_after=5) >= 5
    assert retry_after_s("7") == 7
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_s(later) or 0) <= 31
    assert retry_after_s("soon") is None


async def test_server_sent_events_are_parsed() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [
            ": keep-alive",
            "id: 1",
            "event: status",
            'data: {"status": "pending"}',
            "",
            "data: line one",
            "data: line two",
            "",
            "event: status",
            "data: tail-without-blank",
        ]:
            yield line

    events = [e async for e in parse_sse(lines())]
    assert [(e.event, e.id) for e in events] == [
        ("status", "1"),
        ("message", "1"),
        ("status", "1"),
    ]
    assert events[0].json() == {"status": "pending"}
    assert events[1].data == "line one\nline two"
    assert events[2].data == "tail-without-blank"


@pytest.mark.docker
@pytest.mark.slow
async def test_the_async_client_runs_a_job_and_pages_through_sessions(stack: Stack) -> None:
    spec = {
        "image": IMAGE,
        "command": ["sh", "-c", "echo from-sdk"],
        "resources": {"cpu": "0.5", "mem": "64m"},
    }
    async with AsyncBerth(stack.url, stack.token) as api:
        jobs = [await api.sessions.create(spec) for _ in range(3)]
        final = await api.sessions.wait(str(jobs[0].id))
        assert (final.status.value, final.exit_code) == ("terminated", 0)
        events = [e.status.value async for e in api.sessions.events(str(jobs[0].id))]
        assert events[0] == "pending" and events[-1] == "terminated"
        output = "".join([c async for c in api.sessions.logs(str(jobs[0].id))])
        assert output == "from-sdk\n"
        for job in jobs[1:]:
            await api.sessions.wait(str(job.id))
        paged = [s.id async for s in api.sessions.list(include_terminal=True, page_size=1)]
        assert len(paged) == len(set(paged)), "no session repeats across pages"
        assert {j.id for j in jobs} <= set(paged)
        with pytest.raises(BerthAPIError) as caught:
            await api.sessions.get("no-such-session")
        assert (caught.value.code, caught.value.status) == ("not_found", 404)


@pytest.mark.docker
@pytest.mark.slow
def test_the_blocking_client_mirrors_the_async_one(stack: Stack) -> None:
    with Berth(stack.url, stack.token) as berth:
        me = berth.whoami()
        job = berth.sessions.create(
            {
                "image": IMAGE,
                "command": ["sh", "-c", "exit 4"],
                "resources": {"cpu": "0.5", "mem": "64m"},
            }
        )
        done = berth.sessions.wait(str(job.id))
        nodes = list(berth.nodes.list())
    assert me.user.role.value == "superadmin"
    assert (done.result, done.exit_code) == ("failure", 4)
    assert len(nodes) == 1 and nodes[0].capacity["cuda.device"] == 4
