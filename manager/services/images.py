"""The images registry: which nodes hold each image (from agent reports), what the image's labels
declare (service ports, default app, accelerators, minimum resources), and which projects may
run it. Labels are parsed leniently for listing (a bad label becomes a `problem`, never an error
for the whole list) and strictly where a session depends on them."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent.contract import PortProtocol, ServicePort
from manager.auth.principal import Principal
from manager.db.models import AgentRow, AgentStatus, ProjectRow
from manager.db.models.images import ImageRuleProjectRow, ImageRuleRow
from manager.errors import Forbidden, InvalidRequest
from manager.scheduler.slots import InvalidSlotValue, parse_amount

SERVICE_PORTS = "ai.berth.service-ports"
DEFAULT_APP = "ai.berth.default-app"
ACCELERATORS = "ai.berth.accelerators"
MIN_RESOURCES = "ai.berth.min-resources"

# Application protocols a service port may declare; all but udp travel over TCP.
APP_PROTOCOLS = ("http", "https", "tcp", "udp")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_ACCELERATOR = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")


class LabelError(ValueError):
    """An image label cannot be parsed; the message names the label and the bad part."""


@dataclass(frozen=True)
class ServicePortLabel:
    """One entry of `ai.berth.service-ports`, e.g. `jupyter:http:8888`."""

    name: str
    protocol: str
    container_port: int

    def to_service_port(self) -> ServicePort:
        transport = PortProtocol.UDP if self.protocol == "udp" else PortProtocol.TCP
        return ServicePort(name=self.name, protocol=transport, container_port=self.container_port)


@dataclass(frozen=True)
class ImageMeta:
    service_ports: tuple[ServicePortLabel, ...] = ()
    default_app: str | None = None
    accelerators: tuple[str, ...] = ()
    min_resources: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def port(self, name: str) -> ServicePortLabel | None:
        return next((p for p in self.service_ports if p.name == name), None)


def parse_service_ports(value: str) -> tuple[ServicePortLabel, ...]:
    """`name:protocol:port[,name:protocol:port...]`; names and ports are unique."""
    ports: list[ServicePortLabel] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        if len(parts) != 3:
            raise LabelError(f"{SERVICE_PORTS}: {entry!r} is not name:protocol:port")
        name, protocol, port_text = (p.strip() for p in parts)
        if not _NAME.match(name):
            raise LabelError(
                f"{SERVICE_PORTS}: service name {name!r} must be lowercase letters, digits and "
                "dashes (at most 63)"
            )
        protocol = protocol.lower()
        if protocol not in APP_PROTOCOLS:
            raise LabelError(
                f"{SERVICE_PORTS}: protocol {protocol!r} of {name!r} is not one of "
                + ", ".join(APP_PROTOCOLS)
            )
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise LabelError(f"{SERVICE_PORTS}: port {port_text!r} of {name!r} is not 1-65535")
        port = int(port_text)
        if any(p.name == name for p in ports):
            raise LabelError(f"{SERVICE_PORTS}: service {name!r} is declared twice")
        if any(p.container_port == port and p.protocol == protocol for p in ports):
            raise LabelError(f"{SERVICE_PORTS}: port {port}/{protocol} is declared twice")
        ports.append(ServicePortLabel(name=name, protocol=protocol, container_port=port))
    return tuple(ports)


def parse_accelerators(value: str) -> tuple[str, ...]:
    names: list[str] = []
    for raw in value.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if not _ACCELERATOR.match(name):
            raise LabelError(f"{ACCELERATORS}: {name!r} is not an accelerator name like 'cuda'")
        if name not in names:
            names.append(name)
    return tuple(names)


def parse_min_resources(value: str) -> dict[str, str]:
    try:
        data = json.loads(value)
    except ValueError:
        raise LabelError(f"{MIN_RESOURCES}: not valid JSON") from None
    if not isinstance(data, dict):
        raise LabelError(f"{MIN_RESOURCES}: must be a JSON object of slot name to amount")
    out: dict[str, str] = {}
    for slot, amount in data.items():
        if isinstance(amount, float):
            amount = repr(amount)  # JSON numbers arrive as floats; keep their decimal spelling
        try:
            out[str(slot)] = _decimal_text(parse_amount(str(slot), amount))
        except (InvalidSlotValue, ValueError) as exc:
            raise LabelError(f"{MIN_RESOURCES}: {exc}") from None
    return out


def parse_labels(labels: dict[str, str]) -> ImageMeta:
    """Every Berth label of an image; a bad label is reported in `problems`, never raised."""
    problems: list[str] = []
    ports: tuple[ServicePortLabel, ...] = ()
    accelerators: tuple[str, ...] = ()
    min_resources: dict[str, str] = {}
    if SERVICE_PORTS in labels:
        try:
            ports = parse_service_ports(labels[SERVICE_PORTS])
        except LabelError as exc:
            problems.append(str(exc))
    if ACCELERATORS in labels:
        try:
            accelerators = parse_accelerators(labels[ACCELERATORS])
        except LabelError as exc:
            problems.append(str(exc))
    if MIN_RESOURCES in labels:
        try:
            min_resources = parse_min_resources(labels[MIN_RESOURCES])
        except LabelError as exc:
            problems.append(str(exc))
    default_app = labels.get(DEFAULT_APP, "").strip() or None
    if default_app is not None and not any(p.name == default_app for p in ports):
        problems.append(f"{DEFAULT_APP}: {default_app!r} is not one of the image's service ports")
        default_app = None
    return ImageMeta(
        service_ports=ports,
        default_app=default_app,
        accelerators=accelerators,
        min_resources=min_resources,
        problems=tuple(problems),
    )


def _decimal_text(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageNode:
    node_id: str
    resource_group: str
    architecture: str


@dataclass(frozen=True)
class ImageView:
    name: str
    nodes: list[ImageNode]
    labels: dict[str, str]
    meta: ImageMeta
    # None: no rule, every project may use the image.
    allowed_project_ids: list[uuid.UUID] | None


async def list_images(
    db: AsyncSession, principal: Principal, *, project_id: uuid.UUID | None = None
) -> list[ImageView]:
    """Images on live nodes. Users see the images at least one of their projects may use, and
    only their own projects in `allowed_project_ids`; superadmins see every image and rule."""
    agents = (
        await db.scalars(
            select(AgentRow).where(AgentRow.status == AgentStatus.ALIVE).order_by(AgentRow.id)
        )
    ).all()
    nodes: dict[str, list[ImageNode]] = {}
    labels: dict[str, dict[str, str]] = {}
    for agent in agents:
        for image in agent.images or []:
            name = str(image.get("name", ""))
            if not name:
                continue
            nodes.setdefault(name, []).append(
                ImageNode(
                    node_id=agent.id,
                    resource_group=agent.resource_group,
                    architecture=agent.architecture,
                )
            )
            # Nodes may hold different builds under one tag; the first node (by id) speaks.
            labels.setdefault(
                name, {str(k): str(v) for k, v in (image.get("labels") or {}).items()}
            )
    rules = await _rules(db, images=list(nodes))
    mine = set(principal.project_roles)
    views: list[ImageView] = []
    for name in sorted(nodes):
        allowed = rules.get(name)
        if project_id is not None and allowed is not None and project_id not in allowed:
            continue
        if not principal.is_superadmin:
            if allowed is not None and not (set(allowed) & mine):
                continue
            allowed = None if allowed is None else [p for p in allowed if p in mine]
        views.append(
            ImageView(
                name=name,
                nodes=nodes[name],
                labels=labels[name],
                meta=parse_labels(labels[name]),
                allowed_project_ids=allowed,
            )
        )
    return views


async def set_image_projects(
    db: AsyncSession,
    principal: Principal,
    *,
    image: str,
    project_ids: list[uuid.UUID] | None,
    now: datetime,
) -> list[uuid.UUID] | None:
    """Replace the image's rule: a list limits it to those projects (empty: to none); None
    removes the rule, so every project may use it again. Returns the rule now in force."""
    if not principal.is_superadmin:
        raise Forbidden("only a superadmin can decide which projects may use an image")
    validate_image_name(image)
    if project_ids is None:
        await db.execute(delete(ImageRuleRow).where(ImageRuleRow.image == image))
        return None
    wanted = list(dict.fromkeys(project_ids))
    found = set((await db.scalars(select(ProjectRow.id).where(ProjectRow.id.in_(wanted)))).all())
    missing = [str(p) for p in wanted if p not in found]
    if missing:
        raise InvalidRequest(
            "no such project: " + ", ".join(missing), code="unknown_project", details=missing
        )
    await db.execute(
        insert(ImageRuleRow)
        .values(image=image, updated_by=principal.user_id, updated_at=now)
        .on_conflict_do_update(
            index_elements=[ImageRuleRow.image],
            set_={"updated_by": principal.user_id, "updated_at": now},
        )
    )
    await db.execute(delete(ImageRuleProjectRow).where(ImageRuleProjectRow.image == image))
    for pid in wanted:
        db.add(ImageRuleProjectRow(image=image, project_id=pid))
    await db.flush()
    return wanted


async def check_image_allowed(db: AsyncSession, *, image: str, project_id: uuid.UUID) -> None:
    """Raise Forbidden(image_not_allowed) when a rule exists for `image` without `project_id`.
    Called when a session is created."""
    allowed = (await _rules(db, images=[image])).get(image)
    if allowed is not None and project_id not in allowed:
        raise Forbidden(
            f"image {image!r} is not allowed in this project; ask an admin or pick another "
            "image (`berth images ls`)",
            code="image_not_allowed",
        )


async def image_meta(db: AsyncSession, *, image: str) -> ImageMeta | None:
    """The parsed labels of `image` as reported by the first live node holding it, or None when
    no live node reports it."""
    agents = (
        await db.scalars(
            select(AgentRow).where(AgentRow.status == AgentStatus.ALIVE).order_by(AgentRow.id)
        )
    ).all()
    for agent in agents:
        for entry in agent.images or []:
            if entry.get("name") == image:
                return parse_labels(
                    {str(k): str(v) for k, v in (entry.get("labels") or {}).items()}
                )
    return None


async def service_ports_for(db: AsyncSession, *, image: str) -> list[dict[str, Any]]:
    """The `ports` to store on a new session and pass to the agent: the image's declared
    service ports as ServicePort dicts ({name, protocol, container_port})."""
    meta = await image_meta(db, image=image)
    if meta is None:
        return []
    return [p.to_service_port().model_dump(mode="json") for p in meta.service_ports]


def validate_image_name(image: str) -> None:
    if not _IMAGE_REF.match(image):
        raise InvalidRequest(
            "image must be a reference like 'berth/jupyterlab:4' (letters, digits, ._/:@+-; at "
            "most 512 characters)",
            code="invalid_image",
        )


async def _rules(db: AsyncSession, *, images: list[str]) -> dict[str, list[uuid.UUID]]:
    if not images:
        return {}
    names = (
        await db.scalars(select(ImageRuleRow.image).where(ImageRuleRow.image.in_(images)))
    ).all()
    rules: dict[str, list[uuid.UUID]] = {name: [] for name in names}
    rows = await db.execute(
        select(ImageRuleProjectRow.image, ImageRuleProjectRow.project_id)
        .where(ImageRuleProjectRow.image.in_(list(rules)))
        .order_by(ImageRuleProjectRow.image, ImageRuleProjectRow.project_id)
    )
    for image, pid in rows.all():
        rules[image].append(pid)
    return rules
