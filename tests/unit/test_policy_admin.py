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


def test_labels_with_surrogates_control_characters_or_huge_values_do_not_break_the_admin_api() -> None:
    import argparse

    from controlplane.admin.client import show_services
    from controlplane.proto.admin.v1 import admin_pb2 as api

    odd = task_definition(
        "odd", 1,
        {"xds.service": "odd", "xds.route.prefix": "/\ud800", "xds.\udfff": "x", "xds.timeout.route": "9" * 100_000, "XDS.PORT": "\x1b[31m"},
    )
    bad_name = task_definition("badname", 1, {"xds.service": "bad\ud800name"})
    fine = task_definition("fine", 1, {"xds.service": "fine", "xds.route.prefix": "/fine/"})
    mesh = build_mesh([cluster_state([task(odd, "o", "127.0.0.1"), task(bad_name, "b", "127.0.0.2"), task(fine, "f", "127.0.0.3")], [odd, bad_name, fine])])

    response = api.ListServicesResponse(services=services(mesh), problems=[])
    wire = response.SerializeToString()  # raised UnicodeEncodeError for every service before

    class Stub:
        def ListServices(self, *args: object, **kwargs: object) -> api.ListServicesResponse:  # noqa: N802
            return api.ListServicesResponse.FromString(wire)

    table = show_services(Stub(), [], argparse.Namespace(json=False, endpoints=False, timeout=1.0))  # type: ignore[arg-type]
    table.encode("utf-8")
    assert "fine" in table and "odd" in table
    assert "\x1b" not in table and max(len(line) for line in table.splitlines()) < 600
    assert len(wire) < 20_000  # the 100,000-character value is not echoed
