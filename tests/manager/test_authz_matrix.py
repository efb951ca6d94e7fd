"""Role × resource × verb: every route answers each kind of caller as the permission model says,
and cross-tenant attempts get 404 (or 403 where the route itself is forbidden) and leak nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from manager.db.models import ProjectRole, UserRole
from tests.factories import Actor, World, unique


@dataclass
class Tenants:
    ids: dict[str, uuid.UUID]
    actors: dict[str, Actor]


@pytest.fixture(scope="module")
async def tenants(world: World) -> Tenants:
    dom_a, dom_b = await world.domain(), await world.domain()
    p1, p2, p_tmp = (
        await world.project(dom_a),
        await world.project(dom_b),
        await world.project(dom_a),
    )
    actors = {
        "S": await world.actor(dom_a, role=UserRole.SUPERADMIN),
        "DA": await world.actor(dom_a, role=UserRole.DOMAIN_ADMIN),
        "PA": await world.actor(dom_a, projects={p1.id: ProjectRole.ADMIN}),
        "M": await world.actor(dom_a, projects={p1.id: ProjectRole.MEMBER}),
        "U": await world.actor(dom_a),
        "DB": await world.actor(dom_b, role=UserRole.DOMAIN_ADMIN),
        "UB": await world.actor(dom_b, projects={p2.id: ProjectRole.MEMBER}),
    }
    ids = {"A": dom_a.id, "B": dom_b.id, "P1": p1.id, "P2": p2.id, "PTMP": p_tmp.id}
    ids.update({f"user:{k}": a.user.id for k, a in actors.items()})
    return Tenants(ids=ids, actors=actors)


# (actor, method, path, body, expected status). {X} placeholders are filled from Tenants.ids.
CASES: list[tuple[str, str, str, Any, int]] = [
    # domains
    ("S", "POST", "/domains", {"name": "@dom"}, 201),
    ("DA", "POST", "/domains", {"name": "@dom"}, 403),
    ("M", "POST", "/domains", {"name": "@dom"}, 403),
    ("M", "GET", "/domains/{A}", None, 200),
    ("UB", "GET", "/domains/{A}", None, 404),
    ("DB", "GET", "/domains/{A}", None, 404),
    ("DA", "PATCH", "/domains/{A}", {"description": "x"}, 403),
    ("S", "PATCH", "/domains/{B}", {"description": "x"}, 200),
    # projects
    ("S", "POST", "/projects", {"name": "@p", "domain_id": "{A}"}, 201),
    ("DA", "POST", "/projects", {"name": "@p"}, 201),
    ("PA", "POST", "/projects", {"name": "@p"}, 403),
    ("DB", "POST", "/projects", {"name": "@p", "domain_id": "{A}"}, 404),
    ("M", "GET", "/projects/{P1}", None, 200),
    ("U", "GET", "/projects/{P1}", None, 404),
    ("DB", "GET", "/projects/{P1}", None, 404),
    ("UB", "GET", "/projects/{P1}", None, 404),
    ("PA", "PATCH", "/projects/{P1}", {"description": "by admin"}, 200),
    ("M", "PATCH", "/projects/{P1}", {"description": "by member"}, 403),
    ("DB", "PATCH", "/projects/{P1}", {"description": "cross"}, 404),
    ("PA", "DELETE", "/projects/{PTMP}", None, 403),
    ("DB", "DELETE", "/projects/{PTMP}", None, 404),
    # memberships
    ("M", "GET", "/projects/{P1}/members", None, 200),
    ("U", "GET", "/projects/{P1}/members", None, 404),
    ("DB", "GET", "/projects/{P1}/members", None, 404),
    ("M", "PUT", "/projects/{P1}/members/{user:U}", {"role": "member"}, 403),
    ("DB", "PUT", "/projects/{P1}/members/{user:U}", {"role": "member"}, 404),
    ("PA", "PUT", "/projects/{P1}/members/{user:UB}", {"role": "member"}, 404),
    # users
    ("DA", "POST", "/users", {"username": "@u"}, 201),
    ("M", "POST", "/users", {"username": "@u"}, 403),
    ("DB", "POST", "/users", {"username": "@u", "domain_id": "{A}"}, 404),
    ("DA", "POST", "/users", {"username": "@u", "role": "superadmin"}, 403),
    ("M", "GET", "/users/{user:M}", None, 200),
    ("PA", "GET", "/users/{user:M}", None, 200),
    ("U", "GET", "/users/{user:M}", None, 404),
    ("DB", "GET", "/users/{user:M}", None, 404),
    ("UB", "GET", "/users/{user:M}", None, 404),
    ("M", "PATCH", "/users/{user:M}", {"full_name": "Em"}, 200),
    ("M", "PATCH", "/users/{user:M}", {"role": "domain_admin"}, 403),
    ("M", "PATCH", "/users/{user:U}", {"full_name": "x"}, 404),
    ("DB", "PATCH", "/users/{user:M}", {"is_active": False}, 404),
    ("DA", "PATCH", "/users/{user:S}", {"full_name": "nope"}, 403),
    # tokens
    ("U", "GET", "/tokens?user_id={user:M}", None, 404),
    ("DA", "GET", "/tokens?user_id={user:M}", None, 200),
    ("DB", "POST", "/tokens", {"user_id": "{user:M}"}, 404),
    ("DA", "POST", "/tokens", {"user_id": "{user:M}", "name": "ci"}, 201),
    # resource groups
    ("DA", "POST", "/resource-groups", {"name": "@rg"}, 403),
    ("S", "POST", "/resource-groups", {"name": "@rg", "project_ids": ["{P2}"]}, 201),
]


def _fill(value: Any, ids: dict[str, uuid.UUID]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, str):
        if value.startswith("@"):
            return unique(value[1:])
        for key, ident in ids.items():
            value = value.replace("{" + key + "}", str(ident))
    return value


@pytest.mark.parametrize(
    ("actor", "method", "path", "body", "expected"),
    CASES,
    ids=[f"{a}-{m}-{p}-{e}" for a, m, p, _, e in CASES],
)
async def test_route_answers_each_role_as_the_permission_model_says(
    api: Any, tenants: Tenants, actor: str, method: str, path: str, body: Any, expected: int
) -> None:
    resp = await api.request(
        method,
        "/api/v1" + _fill(path, tenants.ids),
        json=_fill(body, tenants.ids) if body is not None else None,
        headers=tenants.actors[actor].headers,
    )
    payload = await resp.json() if resp.status != 204 else None
    assert resp.status == expected, payload
    if expected >= 400:
        assert set(payload) >= {"code", "message", "request_id"}


@pytest.mark.parametrize(
    ("actor", "path", "foreign"),
    [
        ("DB", "/projects", "P1"),
        ("DB", "/users", "user:M"),
        ("DB", "/domains", "A"),
        ("UB", "/users", "user:UB-peer"),
        ("M", "/projects", "P2"),
        ("M", "/resource-groups", "rg-of-P2"),
    ],
)
async def test_lists_never_contain_other_tenants_rows(
    api: Any, world: World, tenants: Tenants, actor: str, path: str, foreign: str
) -> None:
    if foreign == "rg-of-P2":
        admin = tenants.actors["S"]
        created = await api.post(
            "/api/v1/resource-groups",
            json={"name": unique("rg"), "project_ids": [str(tenants.ids["P2"])]},
            headers=admin.headers,
        )
        foreign_id = (await created.json())["id"]
        await api.post(
            "/api/v1/resource-groups",
            json={"name": unique("rg"), "project_ids": [str(tenants.ids["P1"])]},
            headers=admin.headers,
        )
    elif foreign == "user:UB-peer":
        foreign_id = str(tenants.ids["user:M"])
    else:
        foreign_id = str(tenants.ids[foreign])
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        resp = await api.get("/api/v1" + path, params=query, headers=tenants.actors[actor].headers)
        assert resp.status == 200
        page = await resp.json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen, "the caller should at least see their own rows"
    assert foreign_id not in seen


async def test_member_sees_only_their_projects(api: Any, tenants: Tenants) -> None:
    resp = await api.get("/api/v1/projects", headers=tenants.actors["M"].headers)
    ids = {p["id"] for p in (await resp.json())["items"]}
    assert ids == {str(tenants.ids["P1"])}
