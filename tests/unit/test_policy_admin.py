"""The admin API's Policies reflect the service's real policy."""

from __future__ import annotations

from controlplane.admin.views import services
from controlplane.model.build import build_mesh

from .builders import cluster_state, task, task_definition


def test_policies_in_the_admin_api() -> None:
    td = task_definition(
        "orders", 2,
        {"xds.service": "orders", "xds.lb.policy": "maglev", "xds.lb.hash-header": "x-user", "xds.health.check": "grpc",
         "xds.retry.on": "unavailable", "xds.ratelimit.average": "10", "xds.scheme": "tls", "xds.upstreams": "users",
         "xds.route.weights": "orders:1", "xds.timeout.grpc-max": "30s"},
    )
    (service,) = services(build_mesh([cluster_state([task(td, "o", "127.0.0.1")], [td])]))
    p = service.policies
    assert (p.load_balancing, p.hash_header, p.health_check, p.health_check_interval_ms) == ("maglev", "x-user", "grpc", 5000)
    assert (p.retry_on, p.num_retries, p.max_requests, p.rate_limit_average, p.rate_limit_burst) == ("unavailable", 2, 1024, 10, 10)
    assert (p.upstream_tls, list(p.upstreams), list(p.weights), p.grpc_timeout, p.route_enabled) == (True, ["users"], ["orders:1"], "30000ms", True)
    assert not p.outlier_detection
