"""The set of Envoy resources one role receives, by type."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole
from controlplane.translate.edge_options import EdgeOptions
from controlplane.xds.types import TypeUrl


# Translation of one service (its Cluster, its ClusterLoadAssignment) does not depend on the proxy
# role: cluster.service_cluster and endpoint.load_assignment are memoised on the (immutable,
# hashable) Service, so every role's snapshot holds the very same message objects, and the cache
# serializes each of them once. Callers must never mutate what they return (copy first).


@dataclass(frozen=True)
class Resources:
    """Resources by type URL, then by name."""

    by_type: dict[TypeUrl, dict[str, Message]] = field(default_factory=dict)

    def of(self, type_url: TypeUrl) -> dict[str, Message]:
        return self.by_type.get(type_url, {})


def translate(mesh: Mesh, role: ProxyRole, edge: EdgeOptions = EdgeOptions()) -> Resources:
    """All the resources a proxy of `role` receives for `mesh` (and, for the edge, `edge`'s certificates and settings)."""
    from controlplane.translate import cluster, endpoint, listener, route, secret

    if isinstance(role, EdgeRole):
        route_name = "edge"
        by_type: dict[TypeUrl, dict[str, Message]] = {
            TypeUrl.CLUSTER: {s.name: cluster.service_cluster(s) for s in mesh.services},
            TypeUrl.ENDPOINT: {s.name: endpoint.load_assignment(s) for s in mesh.services},
            TypeUrl.LISTENER: {listener.EDGE_LISTENER: listener.edge_listener(role, route_name, mesh, edge)},
            TypeUrl.ROUTE: {route_name: route.edge_routes(mesh, route_name)},
        }
        if edge.tls_enabled:
            by_type[TypeUrl.SECRET] = dict(secret.edge_secrets(edge.certificates))
        return Resources(by_type=by_type)
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
