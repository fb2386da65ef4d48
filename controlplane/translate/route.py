"""Envoy RouteConfiguration for the edge: one virtual host per host set, longest prefix first."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc, route_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from controlplane.model.mesh import Mesh, Service

# Calls that never reached a task are safe to send to another one: a refused connection, a
# stream the task refused (HTTP/2 REFUSED_STREAM, e.g. while it shuts down) or a reset before
# the request went out. Other failures are the service's to retry.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
DEFAULT_NUM_RETRIES = 2


def default_retry_policy() -> rc.RetryPolicy:
    return rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_NUM_RETRIES),
        retry_host_predicate=[
            rc.RetryPolicy.RetryHostPredicate(name="envoy.retry_host_predicates.previous_hosts", typed_config=_previous_hosts())
        ],
        host_selection_retry_max_attempts=3,
        retry_back_off=rc.RetryPolicy.RetryBackOff(base_interval=duration_pb2.Duration(nanos=25_000_000)),
    )


def _previous_hosts():  # type: ignore[no-untyped-def]
    from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
    from google.protobuf import any_pb2

    packed = any_pb2.Any()
    packed.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return packed


def service_route(service: Service) -> rc.Route:
    return rc.Route(
        name=service.name,
        match=rc.RouteMatch(prefix=service.route.path_prefix),
        route=rc.RouteAction(
            cluster=service.name,
            retry_policy=default_retry_policy(),
            # gRPC streams may be long-lived: no route timeout unless a label asks for one.
            timeout=duration_pb2.Duration(seconds=0),
        ),
    )


def edge_routes(mesh: Mesh, name: str) -> route_pb2.RouteConfiguration:
    """One virtual host per host name (Envoy refuses a domain in two virtual hosts); inside a host,
    the longest path prefix matches first. A service on '*' is also reachable on every named host."""
    by_host: dict[str, list[Service]] = {}
    for service in mesh.services:
        for host in service.route.hosts:
            by_host.setdefault(host, []).append(service)
    catch_all = by_host.get("*", [])
    virtual_hosts = []
    for host in sorted(by_host):
        services = by_host[host] if host == "*" else by_host[host] + [s for s in catch_all if s not in by_host[host]]
        ordered = sorted(services, key=lambda s: (-len(s.route.path_prefix), s.route.path_prefix, s.name))
        virtual_hosts.append(
            rc.VirtualHost(
                name=host.replace("*", "_any_"),
                domains=_domains(host),
                routes=[service_route(s) for s in ordered],
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
