"""Helpers for xDS protocol tests: requests, and reading responses back."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from controlplane.cache.snapshot import Snapshot, build_snapshot
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import translate
from controlplane.xds.types import TypeUrl

CDS, EDS, LDS, RDS = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
ROLE = EdgeRole(listen_address="127.0.0.1", listen_port=10000)
MESSAGES = {
    CDS: cluster_pb2.Cluster,
    EDS: endpoint_pb2.ClusterLoadAssignment,
    LDS: listener_pb2.Listener,
    RDS: route_pb2.RouteConfiguration,
}


def service(name: str, *addresses: str, prefix: str | None = None) -> Service:
    return Service(
        name=name,
        protocol=Protocol.GRPC,
        route=RouteMatch(hosts=("*",), path_prefix=prefix or f"/{name}/"),
        container_port=50051,
        declared_by=f"{name}:1",
        endpoints=tuple(
            Endpoint(address, 50051, f"arn:aws:ecs:eu-west-1:1:task/prod/{name}-{i}", "prod", f"{name}:1", EndpointHealth.HEALTHY)
            for i, address in enumerate(addresses)
        ),
    )


def mesh(*services: Service) -> Mesh:
    return Mesh(services=tuple(sorted(services, key=lambda s: s.name)))


def snapshot(m: Mesh) -> Snapshot:
    return build_snapshot(translate(m, ROLE))


def request(
    type_url: TypeUrl,
    names: tuple[str, ...] = (),
    *,
    ack: discovery_pb2.DiscoveryResponse | None = None,
    version: str | None = None,
    nonce: str | None = None,
    error: str | None = None,
    node_id: str = "edge-1",
) -> discovery_pb2.DiscoveryRequest:
    """A request; `ack` fills version and nonce from a response (an ACK, or a NACK with `error`)."""
    req = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=list(names))
    req.node.id = node_id
    if ack is not None:
        req.response_nonce = ack.nonce
        req.version_info = ack.version_info
    if version is not None:
        req.version_info = version
    if nonce is not None:
        req.response_nonce = nonce
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def types(responses: list[discovery_pb2.DiscoveryResponse]) -> list[str]:
    return [TypeUrl(r.type_url).short for r in responses]


def decoded(response: discovery_pb2.DiscoveryResponse) -> dict[str, object]:
    """The response's resources by name."""
    kind = MESSAGES[TypeUrl(response.type_url)]
    out: dict[str, object] = {}
    for packed in response.resources:
        assert packed.type_url == response.type_url
        message = kind()
        message.ParseFromString(packed.value)
        out[message.cluster_name if kind is endpoint_pb2.ClusterLoadAssignment else message.name] = message
    return out


def names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    return sorted(decoded(response))


def routed_clusters(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    (config,) = decoded(response).values()
    return sorted({r.route.cluster for vh in config.virtual_hosts for r in vh.routes})  # type: ignore[attr-defined]


def addresses(response: discovery_pb2.DiscoveryResponse, cluster: str) -> list[tuple[str, int]]:
    assignment = decoded(response)[cluster]
    return [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for locality in assignment.endpoints  # type: ignore[attr-defined]
        for e in locality.lb_endpoints
    ]
