"""The edge role: every service's Cluster and ClusterLoadAssignment, one listener, one route configuration."""

from __future__ import annotations

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import cluster, endpoint, listener, route
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.xds.types import TypeUrl

EDGE_ROUTES = "edge"


def edge_resources(mesh: Mesh, role: EdgeRole, memo: TranslationMemo) -> Resources:
    return Resources(
        by_type={
            TypeUrl.CLUSTER: {s.name: cluster.memoised_service_cluster(memo, s) for s in mesh.services},
            TypeUrl.ENDPOINT: {s.name: endpoint.memoised_service_load_assignment(memo, s) for s in mesh.services},
            TypeUrl.LISTENER: {listener.EDGE_LISTENER: memo.get("listener/edge", role, lambda: listener.edge_listener(role, EDGE_ROUTES))},
            TypeUrl.ROUTE: {EDGE_ROUTES: route.edge_routes(mesh, EDGE_ROUTES, memo)},
        }
    )
