"""The images registry API: images per node with parsed labels, and per-project rules."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from manager.db.models import AgentStatus
from manager.errors import Forbidden
from manager.services.images import check_image_allowed, service_ports_for
from tests.factories import World, unique
from tests.notebooks.conftest import Rows, Tenant

JUPYTER_LABELS = {
    "ai.berth.service-ports": "jupyter:http:8888",
    "ai.berth.default-app": "jupyter",
    "ai.berth.accelerators": "cuda,rocm",
    "ai.berth.min-resources": '{"cpu":"0.5","mem":"536870912"}',
}


async def _images(api: Any, headers: dict[str, str], **query: str) -> dict[str, Any]:
    resp = await api.get("/api/v1/images", headers=headers, params=query)
    assert resp.status == 200, await resp.text()
    return {item["name"]: item for item in (await resp.json())["items"]}


async def test_list_shows_nodes_and_parsed_labels(
    apps_api: Any, rows: Rows, tenant: Tenant
) -> None:
    image = f"berth/{unique('lab')}:4"
    a = await rows.agent(images=[{"name": image, "labels": JUPYTER_LABELS}])
    b = await rows.agent(
        images=[{"name": image, "labels": JUPYTER_LABELS}, {"name": "other:1", "labels": {}}]
    )
    await rows.agent(images=[{"name": image, "labels": {}}], status=AgentStatus.LOST)

    listed = await _images(apps_api, tenant.owner.headers)
    item = listed[image]
    assert sorted(n["node_id"] for n in item["nodes"]) == sorted([a.id, b.id])  # not the lost one
    assert item["service_ports"] == [
        {"name": "jupyter", "protocol": "http", "container_port": 8888}
    ]
    assert item["default_app"] == "jupyter"
    assert item["accelerators"] == ["cuda", "rocm"]
    assert item["min_resources"] == {"cpu": "0.5", "mem": "536870912"}
    assert item["label_problems"] == []
    assert item["allowed_project_ids"] is None
    assert item["labels"] == JUPYTER_LABELS
    assert b.id in [n["node_id"] for n in listed["other:1"]["nodes"]]


async def test_bad_labels_are_reported_per_image(
    apps_api: Any, rows: Rows, tenant: Tenant
) -> None:
    image = f"berth/{unique('bad')}:1"
    await rows.agent(
        images=[{"name": image, "labels": {"ai.berth.service-ports": "web:http", "x": "y"}}]
    )
    item = (await _images(apps_api, tenant.owner.headers))[image]
    assert item["service_ports"] == []
    assert any("name:protocol:port" in p for p in item["label_problems"])


async def test_project_rules(apps_api: Any, rows: Rows, tenant: Tenant, world: World) -> None:
    image = f"berth/{unique('ruled')}:1"
    await rows.agent(images=[{"name": image, "labels": JUPYTER_LABELS}])
    elsewhere = await world.project(tenant.domain)
    path = f"/api/v1/images/{quote(image, safe='')}/projects"

    # Only superadmins set rules; the refusal has a stable code.
    resp = await apps_api.put(path, json={"project_ids": []}, headers=tenant.admin.headers)
    assert resp.status == 403
    assert (await resp.json())["code"] == "forbidden"

    resp = await apps_api.put(
        path, json={"project_ids": [str(elsewhere.id)]}, headers=tenant.superadmin.headers
    )
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"image": image, "allowed_project_ids": [str(elsewhere.id)]}

    # The owner's project is not allowed: the image disappears from their list.
    assert image not in await _images(apps_api, tenant.owner.headers)
    admin_view = await _images(apps_api, tenant.superadmin.headers)
    assert admin_view[image]["allowed_project_ids"] == [str(elsewhere.id)]
    assert image in await _images(
        apps_api, tenant.superadmin.headers, project_id=str(elsewhere.id)
    )
    assert image not in await _images(
        apps_api, tenant.superadmin.headers, project_id=str(tenant.project.id)
    )
    async with world.db_factory() as db:
        with pytest.raises(Forbidden) as info:
            await check_image_allowed(db, image=image, project_id=tenant.project.id)
        assert info.value.code == "image_not_allowed"
        await check_image_allowed(db, image=image, project_id=elsewhere.id)
        assert await service_ports_for(db, image=image) == [
            {"name": "jupyter", "protocol": "tcp", "container_port": 8888}
        ]

    # An unslashed path works as well as an encoded one; both projects now.
    both = sorted([str(tenant.project.id), str(elsewhere.id)])
    resp = await apps_api.put(
        f"/api/v1/images/{image}/projects",
        json={"project_ids": both},
        headers=tenant.superadmin.headers,
    )
    assert resp.status == 200
    owner_view = await _images(apps_api, tenant.owner.headers)
    assert owner_view[image]["allowed_project_ids"] == [str(tenant.project.id)]  # only theirs

    # null removes the rule: every project again.
    resp = await apps_api.put(path, json={"project_ids": None}, headers=tenant.superadmin.headers)
    assert (await resp.json())["allowed_project_ids"] is None
    assert (await _images(apps_api, tenant.owner.headers))[image]["allowed_project_ids"] is None


async def test_rule_errors(apps_api: Any, tenant: Tenant) -> None:
    headers = tenant.superadmin.headers
    resp = await apps_api.put(
        "/api/v1/images/berth%2Fx:1/projects",
        json={"project_ids": ["00000000-0000-0000-0000-000000000000"]},
        headers=headers,
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "unknown_project"
    resp = await apps_api.put(
        "/api/v1/images/bad%20name/projects", json={"project_ids": []}, headers=headers
    )
    assert resp.status == 400
    assert (await resp.json())["code"] == "invalid_image"
    resp = await apps_api.put(
        "/api/v1/images/berth%2Fx:1/projects", json={"project_ids": "all"}, headers=headers
    )
    assert resp.status == 422
    resp = await apps_api.put("/api/v1/images/berth%2Fx:1/projects", json={})
    assert resp.status == 401
    resp = await apps_api.get("/api/v1/images")
    assert resp.status == 401
