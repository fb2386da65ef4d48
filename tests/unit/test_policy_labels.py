"""Traffic-policy labels -> typed policy: defaults, every label set, cross-label rules, exact errors."""

from __future__ import annotations

import pytest

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.errors import LabelError
from controlplane.model.labels import (
    LABELS,
    parse_container,
    parse_declarations,
    unknown_labels,
)
from controlplane.model.mesh import (
    CircuitBreakers,
    HeaderMatch,
    HealthCheck,
    HealthCheckKind,
    LbPolicy,
    LocalityMode,
    OutlierDetection,
    Protocol,
    RateLimit,
    RetryPolicy,
    Split,
    Timeouts,
    TrafficPolicy,
    UpstreamTls,
    WeightedTarget,
)


def _container(labels: dict[str, str], ports: tuple[int, ...] = (50051,)) -> ContainerDefinition:
    return ContainerDefinition(name="app", labels=labels, port_mappings=tuple(PortMapping(p) for p in ports))


def _parse(labels: dict[str, str], ports: tuple[int, ...] = (50051,)):
    declaration = parse_container(_container({"xds.service": "orders", **labels}, ports))
    assert declaration is not None
    return declaration


def _error(labels: dict[str, str]) -> LabelError:
    with pytest.raises(LabelError) as caught:
        parse_container(_container({"xds.service": "orders", **labels}))
    return caught.value


def test_defaults() -> None:
    declaration = _parse({})
    assert declaration.policy == TrafficPolicy(timeouts=Timeouts(grpc_timeout_header_max_ms=0))
    assert declaration.policy.circuit_breakers == CircuitBreakers(1024, 1024, 1024, 32)
    assert declaration.policy.retry == RetryPolicy(("connect-failure", "refused-stream", "reset-before-request"), 2)
    # gRPC services honour the client's grpc-timeout by default; other protocols ignore it.
    assert declaration.policy.timeouts == Timeouts(route_ms=0, grpc_timeout_header_max_ms=0)
    assert _parse({"xds.protocol": "http1"}).policy.timeouts.grpc_timeout_header_max_ms is None
    assert (declaration.split, declaration.newest_revision_weight, declaration.upstreams) == (None, None, ())
    assert declaration.route.enabled and declaration.route.priority == 0


def test_every_policy_label() -> None:
    declaration = _parse(
        {
            "xds.route.method": "/routeguide.RouteGuide/GetFeature",
            "xds.route.headers": "X-Beta=1, x-tenant",
            "xds.route.priority": "7",
            "xds.route.weights": "orders:90,orders-next:10",
            "xds.upstreams": "payments, users",
            "xds.lb.policy": "LEAST_REQUEST",
            "xds.lb.slow-start": "1.5s",
            "xds.lb.locality": "equal-zones",
            "xds.health.check": "grpc",
            "xds.health.grpc-service": "routeguide.RouteGuide",
            "xds.health.interval": "2s",
            "xds.health.timeout": "250ms",
            "xds.health.healthy-threshold": "1",
            "xds.health.unhealthy-threshold": "3",
            "xds.outlier.consecutive-5xx": "3",
            "xds.outlier.consecutive-gateway-errors": "4",
            "xds.outlier.consecutive-local-origin-failures": "2",
            "xds.outlier.interval": "1s",
            "xds.outlier.ejection-time": "1m",
            "xds.outlier.max-ejection-percent": "100",
            "xds.circuit-breaker.max-connections": "10",
            "xds.circuit-breaker.max-pending-requests": "5",
            "xds.circuit-breaker.max-requests": "20",
            "xds.circuit-breaker.max-retries": "0",
            "xds.retry.on": "unavailable,Resource-Exhausted,connect-failure",
            "xds.retry.attempts": "3",
            "xds.retry.per-try-timeout": "250ms",
            "xds.retry.budget": "20%",
            "xds.timeout.route": "5s",
            "xds.timeout.idle": "5m",
            "xds.timeout.max-stream-duration": "1h",
            "xds.timeout.grpc-max": "30s",
            "xds.ratelimit.average": "100",
            "xds.ratelimit.period": "1m",
            "xds.ratelimit.burst": "150",
            "xds.scheme": "TLS",
            "xds.tls.sni": "Orders.Internal",
        }
    )
    policy = declaration.policy
    assert declaration.route.method == "/routeguide.RouteGuide/GetFeature"
    assert declaration.route.headers == (HeaderMatch("x-beta", "1"), HeaderMatch("x-tenant"))
    assert declaration.route.priority == 7
    assert declaration.split == Split((WeightedTarget("orders", 90), WeightedTarget("orders-next", 10)))
    assert declaration.upstreams == ("payments", "users")
    assert (policy.load_balancing.policy, policy.load_balancing.slow_start_ms, policy.load_balancing.locality) == (
        LbPolicy.LEAST_REQUEST, 1500, LocalityMode.EQUAL_ZONES,
    )
    assert policy.health_check == HealthCheck(HealthCheckKind.GRPC, "routeguide.RouteGuide", "/healthz", 2000, 250, 1, 3)
    assert policy.outlier_detection == OutlierDetection(3, 4, 2, 1000, 60000, 100)
    assert policy.circuit_breakers == CircuitBreakers(10, 5, 20, 0)
    assert policy.retry == RetryPolicy(("unavailable", "resource-exhausted", "connect-failure"), 3, 250, 20.0)
    assert policy.timeouts == Timeouts(5000, 300000, 3600000, 30000)
    assert policy.rate_limit == RateLimit(100, 60000, 150)
    assert policy.tls == UpstreamTls("orders.internal")


def test_hashing_policies_need_a_header() -> None:
    declaration = _parse({"xds.lb.policy": "maglev", "xds.lb.hash-header": "X-User"})
    assert (declaration.policy.load_balancing.policy, declaration.policy.load_balancing.hash_header) == (LbPolicy.MAGLEV, "x-user")
    assert str(_error({"xds.lb.policy": "ring_hash"})) == (
        "label xds.lb.policy='ring_hash': ring_hash hashes a request header or cookie: set xds.lb.hash-header or xds.lb.hash-cookie too"
    )


@pytest.mark.parametrize(
    "labels,label,message",
    [
        ({'xds.lb.policy': 'fastest'}, 'xds.lb.policy', 'expected one of round_robin, least_request, random, ring_hash, maglev'),
        ({'xds.lb.hash-header': 'x-user'}, 'xds.lb.hash-header', 'expected with xds.lb.policy ring_hash or maglev (it is round_robin)'),
        ({'xds.lb.policy': 'random', 'xds.lb.slow-start': '30s'}, 'xds.lb.slow-start', 'expected with xds.lb.policy round_robin or least_request (it is random)'),
        ({'xds.lb.slow-start': '30'}, 'xds.lb.slow-start', 'expected a duration such as 250ms, 1.5s, 2m or 1h (whole milliseconds), from 1ms to 24h, used with lb.policy round_robin or least_request'),
        ({'xds.route.method': '/routeguide.RouteGuide/'}, 'xds.route.method', 'expected an exact gRPC method path /package.Service/Method, e.g. /routeguide.RouteGuide/GetFeature'),
        ({'xds.route.method': '/a.B/C', 'xds.route.prefix': '/a.B/'}, 'xds.route.method', 'set either xds.route.method or xds.route.prefix, not both'),
        ({'xds.route.headers': ':authority=x'}, 'xds.route.headers', "expected a comma-separated list of at most 16 header matches 'name=value' (exact) or 'name' (present), names without ':', each name once, no commas in values"),
        ({'xds.route.priority': '-1'}, 'xds.route.priority', "expected an integer 0-1000, higher matches first among one host's own routes"),
        ({'xds.route.weights': 'orders:90,orders'}, 'xds.route.weights', 'expected a comma-separated list of at most 16 service:weight with integer weights 0-10000, not all 0, e.g. orders:90,orders-next:10'),
        ({'xds.route.weights': 'orders:0'}, 'xds.route.weights', 'expected a comma-separated list of at most 16 service:weight with integer weights 0-10000, not all 0, e.g. orders:90,orders-next:10'),
        ({'xds.route.newest-revision-weight': '101'}, 'xds.route.newest-revision-weight', 'expected an integer 0-100, the percent of calls for the newest task-definition revision'),
        ({'xds.upstreams': 'Payments'}, 'xds.upstreams', "expected a comma-separated list of at most 64 service names (lowercase letters, digits and '-')"),
        ({'xds.health.check': 'exec'}, 'xds.health.check', 'expected one of none, grpc, http, tcp'),
        ({'xds.protocol': 'http1', 'xds.health.check': 'grpc'}, 'xds.health.check', 'expected http, tcp or none: the gRPC health protocol needs xds.protocol grpc or http2'),
        ({'xds.health.path': '/ready'}, 'xds.health.path', 'expected with xds.health.check=http'),
        ({'xds.health.check': 'grpc', 'xds.health.timeout': '5s'}, 'xds.health.timeout', 'expected a duration shorter than xds.health.interval (5s)'),
        ({'xds.outlier.consecutive-5xx': '0'}, 'xds.outlier.consecutive-5xx', 'expected an integer 1-1000'),
        ({'xds.circuit-breaker.max-requests': 'lots'}, 'xds.circuit-breaker.max-requests', 'expected an integer 1-1000000'),
        ({'xds.retry.on': 'unavailable,5xx,teapot'}, 'xds.retry.on', 'expected a comma-separated list of cancelled, deadline-exceeded, internal, resource-exhausted, unavailable, connect-failure, refused-stream, reset-before-request, reset, gateway-error, 5xx'),
        ({'xds.retry.attempts': '11'}, 'xds.retry.attempts', 'expected an integer 0-10, retries after the first try'),
        ({'xds.retry.budget': '0'}, 'xds.retry.budget', 'expected a percent more than 0 and at most 100 (e.g. 20 or 12.5%), the share of active calls that may be retries'),
        ({'xds.timeout.route': 'soon'}, 'xds.timeout.route', 'expected a duration such as 250ms, 1.5s, 2m or 1h (whole milliseconds), from 0 to 24h, 0 means none'),
        ({'xds.ratelimit.burst': '10'}, 'xds.ratelimit.burst', 'expected together with xds.ratelimit.average'),
        ({'xds.ratelimit.average': '10', 'xds.ratelimit.burst': '5'}, 'xds.ratelimit.burst', 'expected at least xds.ratelimit.average (10)'),
        ({'xds.ratelimit.average': '10', 'xds.ratelimit.period': '10ms'}, 'xds.ratelimit.period', 'expected a duration such as 250ms, 1.5s, 2m or 1h (whole milliseconds), from 50ms to 24h'),
        ({'xds.scheme': 'https'}, 'xds.scheme', 'expected one of plain, tls'),
        ({'xds.tls.sni': 'orders.internal'}, 'xds.tls.sni', 'expected with xds.scheme=tls'),
        ({'xds.lb.policy': 'maglev', 'xds.lb.hash-header': 'x', 'xds.lb.locality': 'zone-aware'}, 'xds.lb.locality', 'expected none with xds.lb.policy maglev (Envoy hashes over all zones)'),
    ],
)
def test_malformed_policy_labels(labels: dict[str, str], label: str, message: str) -> None:
    error = _error(labels)
    value = labels.get(label)
    assert (error.label, error.value) == (label, value)
    assert str(error) == f"label {label}={value!r}: {message}"


def test_indexed_labels_declare_more_services_on_other_ports() -> None:
    container = _container(
        {
            "xds.service": "api", "xds.port": "50051",
            "xds.1.service": "web", "xds.1.port": "8080", "xds.1.protocol": "http1", "xds.1.route.hosts": "web.example.com",
            "xds.2.service": "admin", "xds.2.port": "9090", "xds.2.lb.policy": "fastest",
        },
        ports=(50051, 8080, 9090),
    )
    api, web, admin = parse_declarations(container)
    assert not isinstance(api, LabelError) and not isinstance(web, LabelError)
    assert (api.name, api.container_port, api.protocol) == ("api", 50051, Protocol.GRPC)
    assert (web.name, web.container_port, web.protocol, web.route.hosts) == ("web", 8080, Protocol.HTTP1, ("web.example.com",))
    assert isinstance(admin, LabelError)
    assert str(admin) == "label xds.2.lb.policy='fastest': expected one of round_robin, least_request, random, ring_hash, maglev"
    assert unknown_labels(container.labels) == []
    assert unknown_labels({**container.labels, "xds.3.port": "1", "xds.1.lb.polcy": "x"}) == ["xds.1.lb.polcy", "xds.3.port"]


def test_an_indexed_declaration_does_not_inherit_unindexed_labels() -> None:
    container = _container({"xds.service": "api", "xds.port": "50051", "xds.lb.policy": "random", "xds.1.service": "web", "xds.1.port": "8080"}, ports=(50051, 8080))
    api, web = parse_declarations(container)
    assert api.policy.load_balancing.policy is LbPolicy.RANDOM  # type: ignore[union-attr]
    assert web.policy.load_balancing.policy is LbPolicy.ROUND_ROBIN  # type: ignore[union-attr]


def test_every_label_is_documented() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[2] / "docs" / "labels.md").read_text()
    missing = [spec.name for spec in LABELS if f"`xds.{spec.name}`" not in docs]
    assert missing == []
