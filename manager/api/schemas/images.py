"""Request and response models for the images registry."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from manager.api.schemas.common import StrictModel


class ImageQuery(StrictModel):
    project_id: uuid.UUID | None = Field(None, description="Only images this project may use.")


class ServicePortOut(BaseModel):
    name: str = Field(
        description="Service name, the {service} part of /apps/{session}/{service}/."
    )
    protocol: str = Field(description="Application protocol: http, https, tcp or udp.")
    container_port: int


class ImageNodeOut(BaseModel):
    node_id: str
    resource_group: str
    architecture: str


class ImageOut(BaseModel):
    name: str
    nodes: list[ImageNodeOut] = Field(description="Live nodes that hold the image.")
    service_ports: list[ServicePortOut]
    default_app: str | None = Field(None, description="The service opened by default.")
    accelerators: list[str] = Field(description="Accelerator kinds the image supports.")
    min_resources: dict[str, str] = Field(description="Smallest slot amounts it needs.")
    label_problems: list[str] = Field(description="Labels that could not be parsed.")
    allowed_project_ids: list[uuid.UUID] | None = Field(
        None, description="Projects that may use it; null: every project."
    )
    labels: dict[str, str] = Field(description="Raw image labels as the node reported them.")


class ImageList(BaseModel):
    items: list[ImageOut]


class ImageProjectsUpdate(StrictModel):
    project_ids: list[uuid.UUID] | None = Field(
        description="Projects allowed to use the image ([]: none); null removes the rule so "
        "every project may use it.",
        max_length=10000,
    )


class ImageProjectsOut(BaseModel):
    image: str
    allowed_project_ids: list[uuid.UUID] | None
