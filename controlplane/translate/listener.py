"""Envoy Listeners for every role: the edge listener, the sidecar's outbound and inbound
listeners, and the API listener a proxyless gRPC client resolves its target with."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate.edge_http import edge_connection_manager
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.edge_tls import tls_filter_chains, tls_inspector
from controlplane.translate.http_connection_manager import HTTP_CONNECTION_MANAGER, connection_manager
from controlplane.translate.jwt import guarded, jwt_filter
from controlplane.translate.packing import pack

EDGE_LISTENER = "edge"
OUTBOUND = "outbound"
INBOUND = "inbound"


def socket_listener(name: str, address: str, port: int, manager: hcm_pb2.HttpConnectionManager) -> listener_pb2.Listener:
    """A listener on `address:port` with one filter chain: the HTTP connection manager."""
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port)),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[listener_components_pb2.Filter(name=HTTP_CONNECTION_MANAGER, typed_config=pack(manager))]
            )
        ],
    )


def edge_listener(role: EdgeRole, route_config_name: str, mesh: Mesh, options: EdgeOptions) -> listener_pb2.Listener:
    """The edge listener on the address and port the proxy's bootstrap asked for: TLS with a chain per
    certificate (chosen by SNI) when certificates are configured, plaintext (HTTP/1.1 and h2c) otherwise."""
    manager = edge_connection_manager(EDGE_LISTENER, route_config_name, options, jwt_filter(guarded(mesh)))
    listener = socket_listener(EDGE_LISTENER, role.listen_address, role.listen_port, manager)
    listener.per_connection_buffer_limit_bytes.CopyFrom(wrappers_pb2.UInt32Value(value=options.limits.per_connection_buffer_bytes))
    if options.tls_enabled:
        filters = list(listener.filter_chains[0].filters)
        del listener.filter_chains[:]
        listener.filter_chains.extend(tls_filter_chains(mesh, options, filters))
        listener.listener_filters.append(tls_inspector())
    return listener


def outbound_listener(address: str, port: int) -> listener_pb2.Listener:
    """The sidecar's listener for the calls its app makes; routes by RDS (`outbound`)."""
    return socket_listener(OUTBOUND, address, port, connection_manager(OUTBOUND, rds_name=OUTBOUND))


def inbound_listener(address: str, port: int, routes: route_pb2.RouteConfiguration) -> listener_pb2.Listener:
    """The sidecar's listener in front of its app; its one route is inline (it never changes)."""
    return socket_listener(INBOUND, address, port, connection_manager(INBOUND, route_config=routes))


def api_listener(name: str) -> listener_pb2.Listener:
    """What a proxyless gRPC client resolves `xds:///name` with: named after the target's
    authority, no socket, routes by RDS under the same name."""
    manager = connection_manager(name, rds_name=name, local_rate_limit=False)
    return listener_pb2.Listener(name=name, api_listener=api_listener_pb2.ApiListener(api_listener=pack(manager)))
