"""The proxyless gRPC client role (`xds:///name` targets): per service it may call, a Listener
with an API listener, a RouteConfiguration, a Cluster and a ClusterLoadAssignment, as gRPC's xDS
client expects them (the Listener is named after the target's authority); and the Cluster and
ClusterLoadAssignment of every service a route splits calls to (canary weights, revisions)."""

from __future__ import annotations

from functools import partial

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh, Service
from controlplane.proxy.roles import GrpcClientRole
from controlplane.translate import cluster, endpoint, listener, route
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.xds.types import TypeUrl


def visible_services(mesh: Mesh, role: GrpcClientRole) -> tuple[list[Service], frozenset[str] | None]:
    """The services the client declares it calls (every service when it declares none), and the
    names they depend on (None: every service)."""
    own = mesh.by_name.get(role.service)
    if own and own.upstreams:
        candidates = [mesh.by_name[name] for name in sorted(own.upstreams) if name in mesh.by_name]
        depends_on: frozenset[str] | None = frozenset({role.service, *own.upstreams})
    else:
        candidates, depends_on = list(mesh.services), None
    # Per-revision subsets of a service are routing detail of the edge, not targets of their own;
    # a gRPC client cannot use a TCP service.
    visible = [s for s in candidates if s.subset_of is None and s.protocol.is_http]
    targets = split_targets(visible)
    return visible, None if depends_on is None else depends_on | targets


def split_targets(services: list[Service]) -> frozenset[str]:
    """The services the routes of `services` split calls to (weights, per-revision subsets)."""
    return frozenset(t.service for s in services if s.split is not None for t in s.split.targets)


def grpc_client_load_assignment(memo: TranslationMemo, service: Service) -> Message:
    return memo.get_for("endpoints/grpc-client", service.name, memo.endpoints_key(service), partial(endpoint.grpc_client_load_assignment, service))


def grpc_client_resources(mesh: Mesh, role: GrpcClientRole, memo: TranslationMemo) -> Resources:
    services, depends_on = visible_services(mesh, role)
    # A split's targets need their clusters too (present ones: a missing target's share of the
    # calls fails, as at the edge); a target the client may also call by name is there already.
    called = {s.name: s for s in services}
    clusters = called | {name: mesh.by_name[name] for name in sorted(split_targets(services)) if name in mesh.by_name}
    # Clusters and routes are built from the service's settings (policy, split), endpoints from its
    # endpoint set, the API listener from its name alone.
    return Resources(
        by_type={
            TypeUrl.CLUSTER: {name: cluster.memoised_grpc_client_cluster(memo, s) for name, s in clusters.items()},
            TypeUrl.ENDPOINT: {name: grpc_client_load_assignment(memo, s) for name, s in clusters.items()},
            TypeUrl.LISTENER: {s.name: memo.get("listener/api", s.name, partial(listener.api_listener, s.name)) for s in services},
            TypeUrl.ROUTE: {
                s.name: memo.get_for("routes/grpc-client", s.name, memo.settings_key(s), partial(route.grpc_client_routes, s))
                for s in services
            },
        },
        depends_on=depends_on,
    )
