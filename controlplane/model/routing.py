"""Which routes each edge host gets, and in which order. Pure.

Rules (docs/labels.md, "Route ownership"):
- A host's own routes come first, then the routes of every wildcard host that also matches it, the
  most specific wildcard first (`*.shop.example.com`, `*.example.com`, then `*`). An explicit host
  therefore always beats a wildcard for that host, whatever the priorities.
- Inside one host's own routes: higher priority first, then exact gRPC methods, then the longest
  prefix, then more header matches; the service name breaks remaining ties (such routes never
  match the same request, or they would be a conflict).
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.model.mesh import RouteMatch, Service, VirtualHost


def is_routed(service: Service) -> bool:
    """True for a service that has a route of its own at the edge."""
    return service.route.enabled and service.subset_of is None


def route_order(service: Service) -> tuple[object, ...]:
    route = service.route
    return (-route.priority, 0 if route.method else 1, -len(route.path_prefix), -len(route.headers), route.path_key, service.name)


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
    ordered = {host: [s.name for s in sorted(found, key=route_order)] for host, found in own.items()}
    result = []
    for host in sorted(ordered):
        routes = list(ordered[host])
        seen = set(routes)
        for wildcard in wildcards_covering(host):
            for name in ordered.get(wildcard, ()):
                if name not in seen:
                    seen.add(name)
                    routes.append(name)
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
    theirs = {h.name: h.value for h in second.headers}
    return all(h.name in theirs and (h.value is None or theirs[h.name] == h.value) for h in first.headers)


def same_match(first: RouteMatch, second: RouteMatch) -> bool:
    return first.path_key == second.path_key and first.headers == second.headers
