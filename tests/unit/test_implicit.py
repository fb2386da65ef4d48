"""Opt-in services without labels: named port mappings with an appProtocol (Service Connect's)."""

from __future__ import annotations

from dataclasses import replace

from controlplane.discovery.state import ContainerDefinition, PortMapping, TaskDefinition
from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh, Protocol

from .builders import cluster_state, task, task_definition


def _td(labels: dict[str, str], *mappings: PortMapping) -> TaskDefinition:
    return replace(task_definition("orders", 1, labels, ports=()), containers=(ContainerDefinition("app", labels, mappings),))


def _mesh(td: TaskDefinition, on: bool) -> Mesh:
    return build_mesh([cluster_state([task(td, "t1", "127.0.0.1")], [td])], services_from_port_names=on)


def test_named_port_mappings_with_an_app_protocol_declare_services_when_turned_on() -> None:
    td = _td(
        {},
        PortMapping(50051, name="orders-grpc", app_protocol="grpc"),
        PortMapping(8080, name="orders-web", app_protocol="http"),
        PortMapping(9090, name="metrics"),  # no appProtocol: not a service
        PortMapping(7070, app_protocol="http2"),  # no name: not a service
    )

    assert _mesh(td, on=False).services == ()
    services = {s.name: s for s in _mesh(td, on=True).services}
    assert sorted(services) == ["orders-grpc", "orders-web"]
    assert (services["orders-grpc"].protocol, services["orders-grpc"].container_port) == (Protocol.GRPC, 50051)
    assert (services["orders-web"].protocol, services["orders-web"].container_port) == (Protocol.HTTP1, 8080)
    assert services["orders-grpc"].route.hosts == ("orders-grpc",)


def test_labels_win_over_port_names() -> None:
    td = _td({"xds.service": "orders", "xds.port": "50051"}, PortMapping(50051, name="orders-grpc", app_protocol="grpc"))

    assert [s.name for s in _mesh(td, on=True).services] == ["orders"]
