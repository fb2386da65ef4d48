"""Envoy RouteConfiguration for the edge: one virtual host per host name; inside a host, higher
priority first, then exact gRPC methods, then the longest path prefix, header matches first."""

from __future__ import annotations

import functools

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Mesh, Service
from controlplane.translate.durations import duration
from controlplane.translate.rate_limit import LOCAL_RATELIMIT, route_rate_limit
from controlplane.translate.retry import retry_policy


def route_match(service: Service) -> rc.RouteMatch:
    match = rc.RouteMatch()
    if service.route.method:
        match.path = service.route.method
    else:
        match.prefix = service.route.path_prefix
    for header in service.route.headers:
        if header.value is None:
            match.headers.append(rc.HeaderMatcher(name=header.name, present_match=True))
        else:
            match.headers.append(rc.HeaderMatcher(name=header.name, string_match=string_pb2.StringMatcher(exact=header.value)))
    return match


def route_action(service: Service) -> rc.RouteAction:
    """Where the calls go (the service, or weighted services) and how: retries, timeouts, hashing."""
    policy = service.policy
    action = rc.RouteAction(
        retry_policy=retry_policy(policy.retry),
        # gRPC streams may be long-lived: no route timeout unless a label asks for one.
        timeout=duration(policy.timeouts.route_ms),
    )
    if service.split is not None:
        action.weighted_clusters.CopyFrom(
            rc.WeightedCluster(
                clusters=[
                    rc.WeightedCluster.ClusterWeight(name=t.service, weight=wrappers_pb2.UInt32Value(value=t.weight))
                    for t in service.split.targets
                ]
            )
        )
    else:
        action.cluster = service.name
    if policy.load_balancing.hash_header:
        action.hash_policy.append(
            rc.RouteAction.HashPolicy(header=rc.RouteAction.HashPolicy.Header(header_name=policy.load_balancing.hash_header))
        )
    timeouts = policy.timeouts
    if timeouts.idle_ms is not None:
        action.idle_timeout.CopyFrom(duration(timeouts.idle_ms))
    if timeouts.max_stream_duration_ms is not None or timeouts.grpc_timeout_header_max_ms is not None:
        limits = rc.RouteAction.MaxStreamDuration()
        if timeouts.max_stream_duration_ms is not None:
            limits.max_stream_duration.CopyFrom(duration(timeouts.max_stream_duration_ms))
        if timeouts.grpc_timeout_header_max_ms is not None:
            # The client's deadline (grpc-timeout) becomes the route timeout, capped here (0 = no cap).
            limits.grpc_timeout_header_max.CopyFrom(duration(timeouts.grpc_timeout_header_max_ms))
        action.max_stream_duration.CopyFrom(limits)
    return action


@functools.lru_cache(maxsize=65536)
def service_route(service: Service) -> rc.Route:
    route = rc.Route(name=service.name, match=route_match(service), route=route_action(service))
    rate_limit = route_rate_limit(service)
    if rate_limit is not None:
        route.typed_per_filter_config[LOCAL_RATELIMIT].CopyFrom(rate_limit)
    return route


def route_order(service: Service) -> tuple[object, ...]:
    route = service.route
    return (-route.priority, 0 if route.method else 1, -len(route.path_prefix), -len(route.headers), route.path_key, service.name)


def edge_routes(mesh: Mesh, name: str) -> route_pb2.RouteConfiguration:
    """One virtual host per host name (Envoy refuses a domain in two virtual hosts). A service on
    '*' is also reachable on every named host. Services without a route (route.enabled=false,
    per-revision subsets) only receive calls as weight targets."""
    by_host: dict[str, list[Service]] = {}
    for service in mesh.services:
        if not service.route.enabled or service.subset_of is not None:
            continue
        for host in service.route.hosts:
            by_host.setdefault(host, []).append(service)
    catch_all = by_host.get("*", [])
    virtual_hosts = []
    for host in sorted(by_host):
        services = by_host[host] if host == "*" else by_host[host] + [s for s in catch_all if s not in by_host[host]]
        virtual_hosts.append(
            rc.VirtualHost(
                name=host.replace("*", "_any_"),
                domains=_domains(host),
                routes=[service_route(s) for s in sorted(services, key=route_order)],
            )
        )
    return route_pb2.RouteConfiguration(
        name=name, virtual_hosts=virtual_hosts, validate_clusters=wrappers_pb2.BoolValue(value=False)
    )


def _domains(host: str) -> list[str]:
    """The edge listener strips any port from Host/:authority before matching (strip_any_host_port),
    so `*.example.com` matches `a.example.com:8443` too; labels therefore name hosts without ports."""
    return [host]


def referenced_clusters(config: route_pb2.RouteConfiguration) -> frozenset[str]:
    """The clusters a route configuration sends traffic to (for make-before-break removal)."""
    names: set[str] = set()
    for virtual_host in config.virtual_hosts:
        for route in virtual_host.routes:
            if route.route.cluster:
                names.add(route.route.cluster)
            for weighted in route.route.weighted_clusters.clusters:
                names.add(weighted.name)
    return frozenset(names)
