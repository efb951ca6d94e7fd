"""Image label parsing: service ports, default app, accelerators, minimum resources."""

from __future__ import annotations

import pytest

from agent.contract import PortProtocol
from manager.services.images import (
    LabelError,
    ServicePortLabel,
    parse_accelerators,
    parse_labels,
    parse_min_resources,
    parse_service_ports,
)


def test_service_ports_parse_in_order() -> None:
    ports = parse_service_ports("jupyter:http:8888, tensorboard:http:6006,ssh:tcp:22")
    assert ports == (
        ServicePortLabel("jupyter", "http", 8888),
        ServicePortLabel("tensorboard", "http", 6006),
        ServicePortLabel("ssh", "tcp", 22),
    )


def test_service_port_protocol_maps_to_transport() -> None:
    http, dns = parse_service_ports("web:HTTP:80,dns:udp:53")
    assert http.protocol == "http"
    assert http.to_service_port().protocol is PortProtocol.TCP
    assert dns.to_service_port().protocol is PortProtocol.UDP
    assert http.to_service_port().model_dump(mode="json") == {
        "name": "web",
        "protocol": "tcp",
        "container_port": 80,
    }


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("jupyter:8888", "is not name:protocol:port"),
        ("Jupyter:http:8888", "service name 'Jupyter'"),
        ("jupyter:gopher:8888", "protocol 'gopher'"),
        ("jupyter:http:0", "port '0'"),
        ("jupyter:http:70000", "port '70000'"),
        ("jupyter:http:abc", "port 'abc'"),
        ("a:http:1,a:http:2", "declared twice"),
        ("a:http:1,b:http:1", "port 1/http is declared twice"),
    ],
)
def test_bad_service_ports_name_the_problem(value: str, fragment: str) -> None:
    with pytest.raises(LabelError, match=r"ai\.berth\.service-ports") as info:
        parse_service_ports(value)
    assert fragment in str(info.value)


def test_accelerators_are_normalised_and_deduplicated() -> None:
    assert parse_accelerators("cuda, ROCm,cuda,,") == ("cuda", "rocm")
    with pytest.raises(LabelError):
        parse_accelerators("cu da")


def test_min_resources_are_exact_decimals() -> None:
    assert parse_min_resources('{"cpu": 0.5, "mem": "512m", "cuda.device": 1}') == {
        "cpu": "0.5",
        "mem": str(512 * 1024 * 1024),
        "cuda.device": "1",
    }
    for bad in ("[1,2]", "{not json", '{"cpu": -1}', '{"mem": "lots"}'):
        with pytest.raises(LabelError, match=r"ai\.berth\.min-resources"):
            parse_min_resources(bad)


def test_parse_labels_collects_problems_without_failing() -> None:
    meta = parse_labels(
        {
            "ai.berth.service-ports": "jupyter:http:8888",
            "ai.berth.default-app": "jupyter",
            "ai.berth.accelerators": "cuda",
            "ai.berth.min-resources": '{"cpu": "1"}',
            "unrelated": "x",
        }
    )
    assert meta.problems == ()
    assert meta.default_app == "jupyter"
    assert meta.port("jupyter") == ServicePortLabel("jupyter", "http", 8888)
    assert meta.port("ssh") is None
    assert meta.accelerators == ("cuda",)
    assert meta.min_resources == {"cpu": "1"}

    broken = parse_labels(
        {
            "ai.berth.service-ports": "jupyter:http",
            "ai.berth.default-app": "jupyter",
            "ai.berth.min-resources": "nope",
        }
    )
    assert broken.service_ports == ()
    assert broken.default_app is None  # it names no declared service
    assert len(broken.problems) == 3
    assert parse_labels({}).problems == ()
