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
    """Per-service bounds on the edge configuration (settings `max_*_per_service`)."""

    max_hosts_per_service: int = 32
    max_routes_per_service: int = 1000
    max_config_bytes_per_service: int = 512 * 1024


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
    return size


def virtual_host_bytes(host: str) -> int:
    return VIRTUAL_HOST_BASE_BYTES + 2 * len(host) + 6


@dataclass(frozen=True, slots=True)
class Charge:
    """What admitting one service adds to the edge configuration."""

    hosts: int
    routes: int
    bytes: int

    def exceeded(self, limits: Limits) -> str | None:
        """Which limit this charge breaks, in words, or None."""
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
        return None
