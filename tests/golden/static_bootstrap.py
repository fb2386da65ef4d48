"""One role's resources embedded in a static Envoy bootstrap, so `envoy --mode validate` checks them."""

from __future__ import annotations

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane.translate import Resources
from controlplane.translate.http_connection_manager import HTTP_CONNECTION_MANAGER
from controlplane.xds.types import TypeUrl

# API listeners (proxyless gRPC clients) become socket listeners here, one port each: Envoy takes
# at most one API listener, and what we validate is their connection manager and routes.
API_LISTENER_PORTS = 20000


def _inline_routes(manager: hcm_pb2.HttpConnectionManager, routes: dict[str, route_pb2.RouteConfiguration]) -> None:
    if manager.HasField("rds"):
        name = manager.rds.route_config_name
        assert name in routes, f"the connection manager asks RDS for {name!r}, which the role does not receive"
        manager.route_config.CopyFrom(routes[name])


def static_bootstrap(resources: Resources) -> bootstrap_pb2.Bootstrap:
    """Clusters with their EDS inlined as STATIC load assignments; listeners with RDS inlined."""
    assignments: dict[str, endpoint_pb2.ClusterLoadAssignment] = resources.of(TypeUrl.ENDPOINT)  # type: ignore[assignment]
    routes: dict[str, route_pb2.RouteConfiguration] = resources.of(TypeUrl.ROUTE)  # type: ignore[assignment]
    bootstrap = bootstrap_pb2.Bootstrap()
    for message in resources.of(TypeUrl.CLUSTER).values():
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(message)
        if cluster.type == cluster_pb2.Cluster.EDS:
            name = cluster.eds_cluster_config.service_name or cluster.name
            assert name in assignments, f"cluster {cluster.name} has no ClusterLoadAssignment {name!r}"
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(assignments[name])
        bootstrap.static_resources.clusters.append(cluster)
    for number, message in enumerate(resources.of(TypeUrl.LISTENER).values()):
        listener = listener_pb2.Listener()
        listener.CopyFrom(message)
        if listener.HasField("api_listener"):
            manager = hcm_pb2.HttpConnectionManager()
            assert listener.api_listener.api_listener.Unpack(manager)
            listener.ClearField("api_listener")
            listener.address.CopyFrom(
                address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=API_LISTENER_PORTS + number))
            )
            listener.filter_chains.append(
                listener_components_pb2.FilterChain(filters=[listener_components_pb2.Filter(name=HTTP_CONNECTION_MANAGER)])
            )
            listener.filter_chains[0].filters[0].typed_config.Pack(manager)
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                if network_filter.name != HTTP_CONNECTION_MANAGER:
                    continue  # the TCP proxy: nothing to inline
                manager = hcm_pb2.HttpConnectionManager()
                assert network_filter.typed_config.Unpack(manager)
                _inline_routes(manager, routes)
                network_filter.typed_config.Pack(manager)
        bootstrap.static_resources.listeners.append(listener)
    return bootstrap
