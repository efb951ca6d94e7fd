"""Handlers and route table of the images registry. The lead appends IMAGE_ROUTES to
manager/api/routes.py."""

from __future__ import annotations

from manager.api.framework import Call, Route
from manager.api.permissions import Permission as P
from manager.api.schemas import images as s
from manager.services import images as images_service

V1 = "/api/v1"


def _out(view: images_service.ImageView) -> s.ImageOut:
    meta = view.meta
    return s.ImageOut(
        name=view.name,
        nodes=[
            s.ImageNodeOut(
                node_id=n.node_id, resource_group=n.resource_group, architecture=n.architecture
            )
            for n in view.nodes
        ],
        service_ports=[
            s.ServicePortOut(name=p.name, protocol=p.protocol, container_port=p.container_port)
            for p in meta.service_ports
        ],
        default_app=meta.default_app,
        accelerators=list(meta.accelerators),
        min_resources=meta.min_resources,
        label_problems=list(meta.problems),
        allowed_project_ids=view.allowed_project_ids,
        labels=view.labels,
    )


async def list_images(call: Call) -> s.ImageList:
    views = await images_service.list_images(call.tx, call.me, project_id=call.query.project_id)
    return s.ImageList(items=[_out(v) for v in views])


async def set_image_projects(call: Call) -> s.ImageProjectsOut:
    name = call.path("name")
    allowed = await images_service.set_image_projects(
        call.tx, call.me, image=name, project_ids=call.body.project_ids, now=call.now
    )
    return s.ImageProjectsOut(image=name, allowed_project_ids=allowed)


IMAGE_ROUTES = [
    Route(
        "GET",
        f"{V1}/images",
        list_images,
        P.SELF,
        "List images on the nodes",
        query=s.ImageQuery,
        response=s.ImageList,
        tags=("images",),
    ),
    Route(
        "PUT",
        f"{V1}/images/{{name:.+}}/projects",
        set_image_projects,
        # Any user reaches the service, which allows superadmins only (stable 403 code).
        P.SELF,
        "Set the projects allowed to use an image",
        body=s.ImageProjectsUpdate,
        response=s.ImageProjectsOut,
        tags=("images",),
    ),
]
