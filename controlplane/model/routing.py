"""Which routes each edge host gets, and in which order. Pure.

Rules (docs/labels.md, "Route ownership"):
- A host's own routes come first, then the routes of every wildcard host that also matches it, the
  most specific wildcard first (`*.shop.example.com`, `*.example.com`, then `*`). An explicit host
  therefore always beats a wildcard for that host, whatever the priorities. A fallback that could
  never match (an earlier route without header or query matches has a prefix of its path) is left out.
- Inside one host's own routes: higher priority first, then exact gRPC methods, then the longest
  prefix, then more header and query matches; the service name breaks remaining ties (such routes never
  match the same request, or they would be a conflict).
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.model.matching import conditions_cover
from controlplane.model.mesh import RouteMatch, Service, VirtualHost


def is_routed(service: Service) -> bool:
    """True for a service that has an HTTP route of its own at the edge (TCP services have a port)."""
    return service.route.enabled and service.subset_of is None and service.protocol.is_http


def route_order(service: Service) -> tuple[object, ...]:
    route = service.route
    return (-route.priority, 0 if route.method else 1, -len(route.path_prefix), -len(route.headers) - len(route.query), route.path_key, service.name)


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def wildcards_covering(host: str) -> list[str]:
    """The wildcard hosts that also match requests for `host`, the most specific first, `*` last."""
    if host == "*":
        return []
    labels = host.split(".")
    # `a.b.example.com` -> `*.b.example.com`, `*.example.com`, `*.com`; `*.example.com` -> `*.com`.
    start = 1
    found = ["*." + ".".join(labels[i:]) for i in range(start, len(labels))]
    return [h for h in found if h != host] + ["*"]


def covers_host(wildcard: str, host: str) -> bool:
    """True when requests for `host` fall back to the routes of `wildcard`."""
    if wildcard == host or not is_wildcard(wildcard):
        return False
    return wildcard == "*" or host.endswith(wildcard[1:])


def virtual_hosts(services: Iterable[Service]) -> tuple[VirtualHost, ...]:
    """One virtual host per host any routed service names, in host order."""
    own: dict[str, list[Service]] = {}
    for service in services:
        if is_routed(service):
            for host in service.route.hosts:
                own.setdefault(host, []).append(service)
    ordered = {host: sorted(found, key=route_order) for host, found in own.items()}
    result = []
    for host in sorted(ordered):
        routes = [s.name for s in ordered[host]]
        seen = set(routes)
        # Prefixes of routes without header matches already in this host: a fallback under one of
        # them could never match (a host's own "/" makes every fallback dead), so it is left out.
        catch_alls = [s.route.path_prefix for s in ordered[host] if not s.route.method and not s.route.headers and not s.route.query]
        for wildcard in wildcards_covering(host):
            for service in ordered.get(wildcard, ()):
                path = service.route.method or service.route.path_prefix
                if service.name in seen or any(path.startswith(prefix) for prefix in catch_alls):
                    continue
                seen.add(service.name)
                routes.append(service.name)
                if not service.route.method and not service.route.headers and not service.route.query:
                    catch_alls.append(service.route.path_prefix)
        result.append(VirtualHost(host=host, routes=tuple(routes)))
    return tuple(result)


def covers(first: RouteMatch, second: RouteMatch) -> bool:
    """True when every request `second` matches is also matched by `first` (path and headers)."""
    if first.method:
        if second.method != first.method:
            return False
    else:
        path = second.method or second.path_prefix
        if not path.startswith(first.path_prefix):
            return False
    return conditions_cover(first.headers, second.headers) and conditions_cover(first.query, second.query)


def same_match(first: RouteMatch, second: RouteMatch) -> bool:
    return first.path_key == second.path_key and first.headers == second.headers and first.query == second.query
