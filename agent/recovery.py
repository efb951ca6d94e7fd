"""Re-adopt containers found in the runtime (after an agent restart, or an engine that was down).

A container is adopted with exactly the devices and host ports its labels record. It is an
*orphan* when it carries no session id, or when its labels cannot be honoured (unreadable,
device gone, device or port already bound). Orphans are reported in the NodeReport with
`orphan: true` plus an `orphaned` event, keep whatever resources could be re-bound (so nothing
is handed out twice while they run) and are removed when the manager calls DELETE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent import labels as L
from agent.allocator import Allocation, Allocator, PortAllocator
from agent.contract import PublishedPort
from agent.errors import AgentDomainError
from agent.runtime.base import RuntimeContainer


@dataclass
class Adopted:
    allocation: Allocation = field(default_factory=Allocation)
    ports: list[PublishedPort] = field(default_factory=list)
    orphan: bool = False
    reason: str = ""


def adopt(container: RuntimeContainer, *, allocator: Allocator, ports: PortAllocator) -> Adopted:
    owner = container.container_id
    try:
        allocation = L.decode_allocation(container.labels)
        published = L.decode_ports(container.labels)
    except L.LabelError as exc:
        return Adopted(orphan=True, reason=str(exc))
    problems: list[str] = []
    if not container.labels.get(L.SESSION_ID):
        problems.append("no session id label")
    try:
        allocator.adopt(owner=owner, allocation=allocation)
    except AgentDomainError as exc:
        problems.append(f"devices not re-bound: {exc.message}")
        allocation = Allocation()
    try:
        ports.adopt(owner=owner, ports=[port.host_port for port in published])
    except AgentDomainError as exc:
        problems.append(f"ports not re-bound: {exc.message}")
        published = []
    return Adopted(
        allocation=allocation, ports=published, orphan=bool(problems), reason="; ".join(problems)
    )
