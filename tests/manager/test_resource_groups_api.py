"""Resource groups through the API: a listed page carries each group's own projects."""

from __future__ import annotations

from typing import Any

from manager.db.models import UserRole
from tests.factories import World, unique


async def test_a_listed_page_shows_each_groups_projects(api: Any, world: World) -> None:
    domain = await world.domain()
    admin = await world.actor(domain, role=UserRole.SUPERADMIN)
    p1, p2, p3 = [await world.project(domain) for _ in range(3)]
    prefix = unique("rgl")
    wanted = {
        f"{prefix}-a": sorted([str(p1.id), str(p2.id)]),
        f"{prefix}-b": [str(p3.id)],
        f"{prefix}-c": [],
    }
    for name, projects in wanted.items():
        resp = await api.post(
            "/api/v1/resource-groups",
            json={"name": name, "project_ids": projects},
            headers=admin.headers,
        )
        assert resp.status == 201, await resp.text()
    resp = await api.get("/api/v1/resource-groups", params={"name": prefix}, headers=admin.headers)
    assert resp.status == 200
    listed = {g["name"]: sorted(g["project_ids"]) for g in (await resp.json())["items"]}
    assert listed == wanted
