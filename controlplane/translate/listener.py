"""Envoy Listener for the edge role: one HTTP connection manager (HTTP/1.1 and h2c) using RDS."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import any_pb2

from controlplane.roles import EdgeRole
from controlplane.translate.cluster import ads_config_source
from controlplane.translate.rate_limit import LOCAL_RATELIMIT, listener_filter_config

EDGE_LISTENER = "edge"


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def edge_listener(role: EdgeRole, route_config_name: str) -> listener_pb2.Listener:
    """The edge listener on the address and port the proxy's bootstrap asked for."""
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix="edge",
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        # Match virtual hosts on the host name alone: gRPC clients send :authority with a port.
        strip_any_host_port=True,
        rds=hcm_pb2.Rds(config_source=ads_config_source(), route_config_name=route_config_name),
        http_filters=[
            # Acts only on routes that carry a bucket (typed_per_filter_config), see rate_limit.py.
            hcm_pb2.HttpFilter(name=LOCAL_RATELIMIT, typed_config=_pack(listener_filter_config())),
            hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=_pack(router_pb2.Router())),
        ],
    )
    return listener_pb2.Listener(
        name=EDGE_LISTENER,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=role.listen_address, port_value=role.listen_port)
        ),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager", typed_config=_pack(manager)
                    )
                ]
            )
        ],
    )
