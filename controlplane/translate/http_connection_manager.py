"""The HTTP connection manager and its HTTP filter chain, for every role: the edge listener, the
sidecar's listeners and the proxyless gRPC client's API listener all get theirs from here."""

from __future__ import annotations

from typing import Sequence

from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane.translate.browser import cors_filter, grpc_web_filter
from controlplane.translate.config_source import ads_config_source
from controlplane.translate.fault import fault_filter
from controlplane.translate.packing import pack
from controlplane.translate.rate_limit import LOCAL_RATELIMIT, listener_filter_config

HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"


def http_filters(
    *, local_rate_limit: bool, leading: Sequence[hcm_pb2.HttpFilter] = (), authentication: hcm_pb2.HttpFilter | None = None
) -> list[hcm_pb2.HttpFilter]:
    """The HTTP filter chain: optional filters first, the router last (Envoy and gRPC require it last).

    `local_rate_limit` is off for proxyless gRPC clients: gRPC rejects filters it does not implement,
    so they get none of the per-route ones (CORS, gRPC-Web, faults, rate limit).
    `leading` filters (the edge's observability) run before the others, so they see every call.
    `authentication` (the edge's jwt_authn, jwt.py) runs after CORS (a preflight carries no token) and
    gRPC-Web (so a browser gets its refusal as gRPC-Web), before anything that acts for the service.
    """
    filters = list(leading)
    if local_rate_limit:
        # Each acts only on routes that carry its per-route config (typed_per_filter_config). gRPC-Web
        # comes before the faults so that an injected abort reaches a browser as gRPC-Web too.
        filters += [cors_filter(), grpc_web_filter(), *([authentication] if authentication else []), fault_filter()]
        # Acts only on routes that carry a bucket (typed_per_filter_config), see rate_limit.py.
        filters.append(hcm_pb2.HttpFilter(name=LOCAL_RATELIMIT, typed_config=pack(listener_filter_config())))
    filters.append(hcm_pb2.HttpFilter(name=ROUTER, typed_config=pack(router_pb2.Router())))
    return filters


def connection_manager(
    stat_prefix: str,
    *,
    rds_name: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    local_rate_limit: bool = True,
    leading_filters: Sequence[hcm_pb2.HttpFilter] = (),
    authentication: hcm_pb2.HttpFilter | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """A connection manager (HTTP/1.1 and h2c) whose routes come by RDS (`rds_name`) or inline (`route_config`)."""
    if (rds_name is None) == (route_config is None):
        raise ValueError("a connection manager takes its routes from exactly one of rds_name and route_config")
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        # Match virtual hosts on the host name alone: gRPC clients send :authority with a port.
        strip_any_host_port=True,
        http_filters=http_filters(local_rate_limit=local_rate_limit, leading=leading_filters, authentication=authentication),
    )
    if rds_name is not None:
        manager.rds.CopyFrom(hcm_pb2.Rds(config_source=ads_config_source(), route_config_name=rds_name))
    else:
        manager.route_config.CopyFrom(route_config)
    return manager
