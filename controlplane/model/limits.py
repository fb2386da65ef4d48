"""How much edge configuration one service may cause: hosts, route entries, bytes. Pure.

The model knows no protobuf, so bytes are an upper-bound estimate of the serialized route
entries (tests check it against the real translation). A service is charged, when it is admitted
in established order, for its own route in each of its hosts, for the copies of already admitted
wildcard routes that its new hosts receive, and for the copies of its wildcard route that already
admitted hosts receive: each copy is charged once, to the later of the two services.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.model.mesh import Service

# Calibrated against translate's Route messages (tests/unit/test_limits.py keeps them upper bounds):
# match, action, retry policy with its previous_hosts predicate, timeouts, hash policy.
ROUTE_BASE_BYTES = 320
RATE_LIMIT_BYTES = 320  # the per-route local_ratelimit filter config, besides the service name
VIRTUAL_HOST_BASE_BYTES = 16


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the edge configuration: per service, and for the whole edge (settings `max_*`)."""

    max_hosts_per_service: int = 32
    max_routes_per_service: int = 10_000
    max_config_bytes_per_service: int = 4 * 1024 * 1024
    max_edge_routes: int = 50_000


def route_bytes(service: Service) -> int:
    """An upper bound of the bytes one route entry of `service` takes in a RouteConfiguration."""
    route = service.route
    size = ROUTE_BASE_BYTES + 2 * len(service.name) + len(route.method or route.path_prefix)
    size += sum(len(h.name) + len(h.value or "") + 16 for h in route.headers)
    policy = service.policy
    size += len(policy.load_balancing.hash_header or "") + sum(len(c) + 1 for c in policy.retry.retry_on)
    if service.split is not None:
        size += sum(len(t.service) + 16 for t in service.split.targets)
    if policy.rate_limit is not None:
        size += RATE_LIMIT_BYTES + 3 * len(service.name)
    return size + _routing_bytes(service)


# The routing features of issue 17 (docs/labels.md): matchers, rewrites, header edits, per-route
# filter configs (type URLs dominate those), mirror and cookie hash policies.
MATCH_BYTES = 24
FILTER_CONFIG_BYTES = 96
CORS_BYTES = 160
FAULT_BYTES = 320


def _routing_bytes(service: Service) -> int:
    route, policy = service.route, service.policy
    size = 8 * len(route.headers)  # a matcher kind's wrapper (safe_regex, invert_match) beyond the name and value counted above
    size += sum(len(q.name) + len(q.value or "") + MATCH_BYTES for q in route.query)
    rewrite = policy.rewrite
    size += len(rewrite.prefix or "") + len(rewrite.host or "") + (8 if rewrite.prefix or rewrite.host or rewrite.host_to_upstream else 0)
    edits = policy.header_edits
    size += sum(len(n) + len(v) + MATCH_BYTES for n, v in edits.request_add + edits.response_add)
    size += sum(len(n) + 4 for n in edits.request_remove + edits.response_remove)
    if policy.grpc_web:
        size += FILTER_CONFIG_BYTES
    if policy.cors is not None:
        cors = policy.cors
        texts = cors.allow_methods + cors.allow_headers + cors.expose_headers
        size += CORS_BYTES + sum(2 * len(o) + 24 for o in cors.allow_origins) + sum(len(t) + 1 for t in texts)
    if policy.fault is not None:
        size += FAULT_BYTES + 5 * len(service.name) + sum(len(h.name) + len(h.value or "") + MATCH_BYTES for h in policy.fault.headers)
    if policy.mirror is not None:
        size += len(policy.mirror.service) + 2 * MATCH_BYTES
    if policy.load_balancing.hash_cookie is not None:
        size += len(policy.load_balancing.hash_cookie.name) + 2 * MATCH_BYTES
    return size


def virtual_host_bytes(host: str) -> int:
    return VIRTUAL_HOST_BASE_BYTES + 2 * len(host) + 6


@dataclass(frozen=True, slots=True)
class Charge:
    """What admitting one service adds to the edge configuration."""

    hosts: int
    routes: int
    bytes: int

    def exceeded(self, limits: Limits, edge_routes: int = 0) -> str | None:
        """Which limit this charge breaks, in words, or None; `edge_routes` are the entries the
        services admitted before hold."""
        if self.hosts > limits.max_hosts_per_service:
            return f"{self.hosts} hosts, more than the {limits.max_hosts_per_service} allowed per service"
        if self.routes > limits.max_routes_per_service:
            return (
                f"{self.routes} route entries at the edge (its own route in each host, plus wildcard routes "
                f"copied into its hosts or its wildcard route copied into other hosts), more than the "
                f"{limits.max_routes_per_service} allowed per service"
            )
        if self.bytes > limits.max_config_bytes_per_service:
            return (
                f"about {self.bytes} bytes of route configuration, more than the "
                f"{limits.max_config_bytes_per_service} allowed per service"
            )
        if edge_routes + self.routes > limits.max_edge_routes:
            return (
                f"{self.routes} route entries to the {edge_routes} that established services hold at the edge, more "
                f"than the {limits.max_edge_routes} allowed in all"
            )
        return None
