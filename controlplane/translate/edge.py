"""The edge role: every service's Cluster and ClusterLoadAssignment, one listener, one route
configuration, and the Secrets of the listener's certificates when it terminates TLS."""

from __future__ import annotations

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import cluster, endpoint, listener, route, secret
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.edge_tls import declared_hosts
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.xds.types import TypeUrl

EDGE_ROUTES = "edge"


def edge_resources(mesh: Mesh, role: EdgeRole, memo: TranslationMemo, edge: EdgeOptions) -> Resources:
    # With TLS, the listener's SNI names follow the hosts services declare; without, the mesh plays no part.
    hosts = frozenset(declared_hosts(mesh)) if edge.tls_enabled else frozenset()
    by_type: dict[TypeUrl, dict[str, Message]] = {
        TypeUrl.CLUSTER: {s.name: cluster.memoised_service_cluster(memo, s) for s in mesh.services},
        TypeUrl.ENDPOINT: {s.name: endpoint.memoised_service_load_assignment(memo, s) for s in mesh.services},
        TypeUrl.LISTENER: {
            listener.EDGE_LISTENER: memo.get(
                "listener/edge", (role, edge, hosts), lambda: listener.edge_listener(role, EDGE_ROUTES, mesh, edge)
            )
        },
        TypeUrl.ROUTE: {EDGE_ROUTES: route.edge_routes(mesh, EDGE_ROUTES, memo)},
    }
    if edge.tls_enabled:
        by_type[TypeUrl.SECRET] = dict(secret.edge_secrets(edge.certificates))
    return Resources(by_type=by_type)
