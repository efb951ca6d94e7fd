"""Container labels: the only record of what the agent bound to a container.

Recovery after an agent restart rebuilds device and port bindings from these labels alone.
"""

from __future__ import annotations

import json
from decimal import Decimal

from pydantic import TypeAdapter

from agent.allocator import Allocation
from agent.contract import PublishedPort

PREFIX = "ai.berth."
NODE_ID = PREFIX + "node-id"
CONTAINER_ID = PREFIX + "container-id"
SESSION_ID = PREFIX + "session-id"
SLOTS = PREFIX + "slots"
DEVICES = PREFIX + "devices"
PORTS = PREFIX + "ports"
IMAGE = PREFIX + "image"

_PORTS = TypeAdapter(list[PublishedPort])


class LabelError(ValueError):
    """The labels on a container cannot be turned back into bindings."""


def encode(
    *,
    node_id: str,
    container_id: str,
    session_id: str,
    image: str,
    allocation: Allocation,
    ports: list[PublishedPort],
    extra: dict[str, str],
) -> dict[str, str]:
    # Caller labels never override ours: recovery must be able to trust the ai.berth.* keys.
    labels = {key: value for key, value in extra.items() if not key.startswith(PREFIX)}
    labels.update(
        {
            NODE_ID: node_id,
            CONTAINER_ID: container_id,
            SESSION_ID: session_id,
            IMAGE: image,
            SLOTS: json.dumps({"cpu": str(allocation.cpu), "mem": str(allocation.mem)}),
            DEVICES: json.dumps(
                {
                    slot: {device_id: str(amount) for device_id, amount in bound.items()}
                    for slot, bound in allocation.devices.items()
                },
                sort_keys=True,
            ),
            PORTS: _PORTS.dump_json(ports).decode(),
        }
    )
    return labels


def decode_allocation(labels: dict[str, str]) -> Allocation:
    try:
        slots = json.loads(labels.get(SLOTS, "{}"))
        devices = json.loads(labels.get(DEVICES, "{}"))
        return Allocation(
            cpu=Decimal(slots.get("cpu", "0")),
            mem=Decimal(slots.get("mem", "0")),
            devices={
                slot: {device_id: Decimal(amount) for device_id, amount in bound.items()}
                for slot, bound in devices.items()
            },
        )
    except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        raise LabelError(f"unreadable allocation labels: {exc}") from exc


def decode_ports(labels: dict[str, str]) -> list[PublishedPort]:
    try:
        return _PORTS.validate_json(labels.get(PORTS, "[]"))
    except ValueError as exc:
        raise LabelError(f"unreadable port labels: {exc}") from exc
