"""The set of Envoy resources one role receives, by type."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh
from controlplane.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole


# Translation of one service (its Cluster, its ClusterLoadAssignment) does not depend on the proxy
# role: cluster.service_cluster and endpoint.load_assignment are memoised on the (immutable,
# hashable) Service, so every role's snapshot holds the very same message objects, and the cache
# serializes each of them once. Callers must never mutate what they return (copy first).


class TypeUrl(StrEnum):
    """xDS resource types, in the order ADS sends them (CDS, EDS, LDS, RDS)."""

    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

    @property
    def short(self) -> str:
        return {"Cluster": "CDS", "ClusterLoadAssignment": "EDS", "Listener": "LDS", "RouteConfiguration": "RDS"}[
            self.value.rsplit(".", 1)[-1]
        ]


ORDER: tuple[TypeUrl, ...] = (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE)


@dataclass(frozen=True)
class Resources:
    """Resources by type URL, then by name."""

    by_type: dict[TypeUrl, dict[str, Message]] = field(default_factory=dict)

    def of(self, type_url: TypeUrl) -> dict[str, Message]:
        return self.by_type.get(type_url, {})


def translate(mesh: Mesh, role: ProxyRole) -> Resources:
    """All the resources a proxy of `role` receives for `mesh`."""
    from controlplane.translate import cluster, endpoint, listener, route

    if isinstance(role, EdgeRole):
        route_name = "edge"
        return Resources(
            by_type={
                TypeUrl.CLUSTER: {s.name: cluster.service_cluster(s) for s in mesh.services},
                TypeUrl.ENDPOINT: {s.name: endpoint.load_assignment(s) for s in mesh.services},
                TypeUrl.LISTENER: {listener.EDGE_LISTENER: listener.edge_listener(role, route_name)},
                TypeUrl.ROUTE: {route_name: route.edge_routes(mesh, route_name)},
            }
        )
    if isinstance(role, (SidecarRole, GrpcClientRole)):
        from controlplane.translate.grpc_client import grpc_client_resources
        from controlplane.translate.sidecar import sidecar_resources

        parts = sidecar_resources(mesh, role) if isinstance(role, SidecarRole) else grpc_client_resources(mesh, role)
        return Resources(
            by_type={
                TypeUrl.CLUSTER: parts["clusters"],
                TypeUrl.ENDPOINT: parts["endpoints"],
                TypeUrl.LISTENER: parts["listeners"],
                TypeUrl.ROUTE: parts["routes"],
            }
        )
    raise TypeError(f"no translation for role {role!r}")
