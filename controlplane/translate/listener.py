"""Envoy Listeners with one HTTP connection manager (HTTP/1.1 and h2c): the edge listener, and the
sidecar's outbound and inbound listeners."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from controlplane.proxy.roles import EdgeRole
from controlplane.translate.cluster import ads_config_source
from controlplane.translate.packing import pack
from controlplane.translate.rate_limit import LOCAL_RATELIMIT, listener_filter_config

EDGE_LISTENER = "edge"


def http_listener(
    name: str,
    address: str,
    port: int,
    *,
    rds_name: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
) -> listener_pb2.Listener:
    """A listener whose routes come by RDS (`rds_name`) or inline (`route_config`)."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        # Match virtual hosts on the host name alone: gRPC clients send :authority with a port.
        strip_any_host_port=True,
        http_filters=[
            # Acts only on routes that carry a bucket (typed_per_filter_config), see rate_limit.py.
            hcm_pb2.HttpFilter(name=LOCAL_RATELIMIT, typed_config=pack(listener_filter_config())),
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())),
        ],
    )
    if rds_name is not None:
        manager.rds.CopyFrom(hcm_pb2.Rds(config_source=ads_config_source(), route_config_name=rds_name))
    elif route_config is not None:
        manager.route_config.CopyFrom(route_config)
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port)),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager", typed_config=pack(manager))
                ]
            )
        ],
    )


def edge_listener(role: EdgeRole, route_config_name: str) -> listener_pb2.Listener:
    """The edge listener on the address and port the proxy's bootstrap asked for."""
    return http_listener(EDGE_LISTENER, role.listen_address, role.listen_port, rds_name=route_config_name)
