"""Resources for proxyless gRPC clients (`xds:///name` targets): per service a Listener with an
API listener, a RouteConfiguration, a Cluster and a ClusterLoadAssignment, as gRPC's xDS client
expects them (the Listener is named after the target's authority)."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from controlplane.model.mesh import Mesh, Service
from controlplane.proxy.roles import GrpcClientRole
from controlplane.translate import endpoint, listener
from controlplane.translate.config_source import ads_config_source


def visible_services(mesh: Mesh, role: GrpcClientRole) -> list[Service]:
    """The services the client declares it calls; every service when it declares none."""
    own = mesh.service(role.service)
    declared = set(getattr(own, "upstreams", ()) or ()) if own else set()
    # Per-revision subsets of a service are routing detail of the edge, not targets of their own.
    return [s for s in mesh.services if (not declared or s.name in declared) and getattr(s, "subset_of", None) is None]


def routes(service: Service) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(
        name=service.name,
        virtual_hosts=[
            rc.VirtualHost(
                name=service.name,
                domains=[service.name],
                routes=[rc.Route(match=rc.RouteMatch(prefix=""), route=rc.RouteAction(cluster=service.name))],
            )
        ],
        validate_clusters=wrappers_pb2.BoolValue(value=False),
    )


def client_cluster(service: Service) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=service.name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_config_source()),
        connect_timeout=duration_pb2.Duration(seconds=2),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
    )


def client_load_assignment(service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """gRPC ignores localities without a weight: weigh each zone by its endpoints."""
    assignment = endpoint_pb2.ClusterLoadAssignment()
    assignment.CopyFrom(endpoint.load_assignment(service))  # the shared message must not change
    for locality in assignment.endpoints:
        locality.load_balancing_weight.value = max(1, len(locality.lb_endpoints))
    return assignment


def grpc_client_resources(mesh: Mesh, role: GrpcClientRole) -> dict[str, dict[str, Message]]:
    services = visible_services(mesh, role)
    return {
        "clusters": {s.name: client_cluster(s) for s in services},
        "endpoints": {s.name: client_load_assignment(s) for s in services},
        "listeners": {s.name: listener.api_listener(s.name) for s in services},
        "routes": {s.name: routes(s) for s in services},
    }
