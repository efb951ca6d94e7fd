"""Bad input gets a 4xx JSON error with a stable code, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from manager.db.models import UserRole
from tests.factories import World, unique


@pytest.fixture
async def admin(world: World) -> Any:
    return await world.actor(await world.domain(), role=UserRole.DOMAIN_ADMIN)


async def _project_names(api: Any, admin: Any) -> set[str]:
    resp = await api.get("/api/v1/projects", params={"limit": "1000"}, headers=admin.headers)
    return {p["name"] for p in (await resp.json())["items"]}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (b"[1, 2]", 422, "validation_error"),
        (b'{"name": 42}', 422, "validation_error"),
        (b'{"name": "ok", "unknown": true}', 422, "validation_error"),
        (b'{"name": "../etc"}', 422, "validation_error"),
        (b'{"name": "bad\\u0000name"}', 422, "validation_error"),
        (b'{"name": "x", "domain_id": "not-a-uuid"}', 422, "validation_error"),
        (b"\xff\xfe", 400, "invalid_json"),
    ],
)
async def test_malformed_bodies_are_rejected_and_nothing_is_written(
    api: Any, admin: Any, body: bytes, status: int, code: str
) -> None:
    before = await _project_names(api, admin)
    resp = await api.post(
        "/api/v1/projects",
        data=body,
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    payload = await resp.json()
    assert resp.status == status, payload
    assert payload["code"] == code and payload["request_id"]
    assert await _project_names(api, admin) == before


async def test_an_oversized_body_gets_413(api: Any, admin: Any) -> None:
    huge = b'{"name": "x", "description": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    resp = await api.post(
        "/api/v1/projects",
        data=huge,
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert (await resp.json())["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/projects/not-a-uuid", 400, "invalid_path"),
        ("GET", "/api/v1/nowhere", 404, "route_not_found"),
        ("PUT", "/api/v1/projects", 405, "method_not_allowed"),
        ("GET", "/api/v1/projects?limit=0", 422, "validation_error"),
        ("GET", "/api/v1/projects?limit=abc", 422, "validation_error"),
        ("GET", "/api/v1/projects?cursor=%%%", 400, "invalid_request"),
        ("GET", "/api/v1/projects?bogus=1", 422, "validation_error"),
    ],
)
async def test_bad_paths_and_queries_get_json_errors(
    api: Any, admin: Any, method: str, path: str, status: int, code: str
) -> None:
    resp = await api.request(method, path, headers=admin.headers)
    payload = await resp.json()
    assert resp.status == status, payload
    assert payload["code"] == code


async def test_a_duplicate_name_is_a_conflict_not_a_500(api: Any, admin: Any) -> None:
    name = unique("dup")
    first = await api.post("/api/v1/projects", json={"name": name}, headers=admin.headers)
    second = await api.post("/api/v1/projects", json={"name": name}, headers=admin.headers)
    assert first.status == 201
    assert second.status == 409 and (await second.json())["code"] == "conflict"


async def test_pagination_walks_every_row_once(api: Any, admin: Any) -> None:
    names = {unique("page") for _ in range(7)}
    for name in names:
        assert (await api.post("/api/v1/projects", json={"name": name}, headers=admin.headers)).ok
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", "name": "page-", **({"cursor": cursor} if cursor else {})}
        page = await (
            await api.get("/api/v1/projects", params=params, headers=admin.headers)
        ).json()
        seen += [p["name"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert names <= set(seen)
