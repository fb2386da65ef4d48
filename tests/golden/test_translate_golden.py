"""Golden files: label sets -> Mesh -> Envoy resources for the edge role, as YAML.

Regenerate with UPDATE_GOLDEN=1 and review the diff like code.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import json_format

from controlplane.demo.envoy import envoy_binary
from controlplane.cache.snapshot import build_snapshot
from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import Resources, translate
from controlplane.xds.types import ORDER, TypeUrl
from unit.builders import cluster_state, task, task_definition

GOLDEN = Path(__file__).parent
ENVOY = envoy_binary()  # found like the demo finds it: beside this Python, else on PATH
ROLE = EdgeRole(listen_address="127.0.0.1", listen_port=10000)


def single_grpc() -> Mesh:
    td = task_definition("routeguide", 3, {"xds.service": "routeguide", "xds.route.prefix": "/routeguide.RouteGuide/"})
    return build_mesh([cluster_state([task(td, "task-a", "127.0.0.11"), task(td, "task-b", "127.0.0.12")], [td])])


def grpc_and_http1() -> Mesh:
    orders = task_definition(
        "orders", 7, {"xds.service": "orders", "xds.route.hosts": "api.example.com", "xds.route.prefix": "/orders.Orders/"}
    )
    web = task_definition(
        "web", 2, {"xds.service": "web", "xds.protocol": "http1", "xds.route.hosts": "www.example.com"}, ports=(8080,)
    )
    status = task_definition(
        "status", 1, {"xds.service": "status", "xds.protocol": "http1", "xds.route.prefix": "/status/"}, ports=(8081,)
    )
    tasks = [
        task(orders, "orders-1", "127.0.1.10"),
        task(web, "web-1", "127.0.2.10", port=32768),
        task(status, "status-1", "127.0.3.10"),
    ]
    return build_mesh([cluster_state(tasks, [orders, web, status])])


def draining_two_zones() -> Mesh:
    td = task_definition("payments", 12, {"xds.service": "payments", "xds.protocol": "http2"})
    tasks = [
        task(td, "pay-a1", "127.0.1.21", zone="eu-west-1a"),
        task(td, "pay-a2", "127.0.1.22", zone="eu-west-1a", desired_status="STOPPED"),
        task(td, "pay-b1", "127.0.2.21", zone="eu-west-1b", container_health="UNHEALTHY"),
        task(td, "pay-b2", "127.0.2.22", zone="eu-west-1b", last_status="DEACTIVATING", desired_status="STOPPED"),
        task(td, "pay-b3", "127.0.2.23", zone="eu-west-1b", last_status="PENDING"),
    ]
    return build_mesh([cluster_state(tasks, [td])])


def empty() -> Mesh:
    return build_mesh([cluster_state([], [])])


def _state(*services: tuple[str, int, dict[str, str]], cluster: str = "prod") -> ClusterState:
    """One task definition per (family, revision, labels), two tasks each in two zones."""
    tds, tasks = [], []
    for number, (family, revision, labels) in enumerate(services):
        td = task_definition(family, revision, labels)
        tds.append(td)
        tasks.append(task(td, f"{family}-{revision}-a", f"127.{number}.{revision}.11", zone="eu-west-1a", cluster=cluster))
        tasks.append(task(td, f"{family}-{revision}-b", f"127.{number}.{revision}.12", zone="eu-west-1b", cluster=cluster))
    return cluster_state(tasks, tds, cluster=cluster)


def _mesh(*services: tuple[str, int, dict[str, str]]) -> Mesh:
    return build_mesh([_state(*services)])


ROUTING = (
    ("features", 1, {"xds.service": "features", "xds.route.method": "/routeguide.RouteGuide/GetFeature"}),
    ("lister", 1, {"xds.service": "lister", "xds.route.method": "/routeguide.RouteGuide/ListFeatures", "xds.route.priority": "10"}),
    ("beta", 1, {"xds.service": "beta", "xds.route.prefix": "/routeguide.RouteGuide/", "xds.route.headers": "x-beta=1,x-tenant"}),
    ("guide", 1, {"xds.service": "guide", "xds.route.prefix": "/routeguide.RouteGuide/"}),
)
SPLIT = (
    ("orders", 7, {"xds.service": "orders", "xds.route.hosts": "orders.example.com", "xds.route.weights": "orders:90,orders-next:10"}),
    ("orders-next", 1, {"xds.service": "orders-next", "xds.route.enabled": "false"}),
)
BALANCING = (
    ("least", 1, {"xds.service": "least", "xds.route.hosts": "least.example.com", "xds.lb.policy": "least_request", "xds.lb.slow-start": "30s"}),
    ("rr", 1, {"xds.service": "rr", "xds.route.hosts": "rr.example.com", "xds.lb.slow-start": "1m", "xds.lb.locality": "equal-zones"}),
    ("random", 1, {"xds.service": "random", "xds.route.hosts": "random.example.com", "xds.lb.policy": "random", "xds.lb.locality": "zone-aware"}),
    ("ring", 1, {"xds.service": "ring", "xds.route.hosts": "ring.example.com", "xds.lb.policy": "ring_hash", "xds.lb.hash-header": "x-session"}),
    ("maglev", 1, {"xds.service": "maglev", "xds.route.hosts": "maglev.example.com", "xds.lb.policy": "maglev", "xds.lb.hash-header": "X-User"}),
)
HEALTH = (
    ("grpc-checked", 1, {"xds.service": "grpc-checked", "xds.route.hosts": "grpc.example.com", "xds.health.check": "grpc", "xds.health.grpc-service": "routeguide.RouteGuide", "xds.health.interval": "1s", "xds.health.timeout": "500ms", "xds.health.unhealthy-threshold": "3", "xds.health.healthy-threshold": "1"}),
    ("http-checked", 1, {"xds.service": "http-checked", "xds.protocol": "http1", "xds.route.hosts": "http.example.com", "xds.health.check": "http", "xds.health.path": "/ready"}),
)
OUTLIER = (
    ("ejecting", 1, {"xds.service": "ejecting", "xds.route.hosts": "ejecting.example.com", "xds.outlier.consecutive-5xx": "3", "xds.outlier.consecutive-local-origin-failures": "2", "xds.outlier.interval": "1s", "xds.outlier.ejection-time": "1m", "xds.outlier.max-ejection-percent": "100"}),
    ("gateway", 1, {"xds.service": "gateway", "xds.route.hosts": "gateway.example.com", "xds.outlier.consecutive-gateway-errors": "4"}),
)
CIRCUIT_BREAKERS = (
    ("limited", 1, {"xds.service": "limited", "xds.route.hosts": "limited.example.com", "xds.circuit-breaker.max-connections": "10", "xds.circuit-breaker.max-pending-requests": "5", "xds.circuit-breaker.max-requests": "20", "xds.circuit-breaker.max-retries": "2"}),
    ("budgeted", 1, {"xds.service": "budgeted", "xds.route.hosts": "budgeted.example.com", "xds.retry.budget": "20"}),
)
RETRIES_TIMEOUTS = (
    ("retrying", 1, {"xds.service": "retrying", "xds.route.hosts": "retrying.example.com", "xds.retry.on": "unavailable,resource-exhausted,cancelled,deadline-exceeded,internal,connect-failure", "xds.retry.attempts": "3", "xds.retry.per-try-timeout": "250ms", "xds.timeout.route": "5s", "xds.timeout.idle": "5m", "xds.timeout.max-stream-duration": "1h", "xds.timeout.grpc-max": "30s"}),
    ("deadline-free", 1, {"xds.service": "deadline-free", "xds.route.hosts": "free.example.com", "xds.timeout.grpc-max": "off"}),
)
RATE_LIMIT = (
    ("throttled", 1, {"xds.service": "throttled", "xds.route.hosts": "throttled.example.com", "xds.ratelimit.average": "100", "xds.ratelimit.period": "1s", "xds.ratelimit.burst": "150"}),
)
UPSTREAM_TLS = (
    ("secure", 1, {"xds.service": "secure", "xds.route.hosts": "secure.example.com", "xds.scheme": "tls", "xds.tls.sni": "secure.internal"}),
    ("secure-web", 1, {"xds.service": "secure-web", "xds.protocol": "http1", "xds.route.hosts": "web.example.com", "xds.scheme": "tls"}),
)


def revision_split_state() -> ClusterState:
    old = task_definition("pay", 6, {"xds.service": "pay", "xds.route.hosts": "pay.example.com"})
    new = task_definition("pay", 7, {"xds.service": "pay", "xds.route.hosts": "pay.example.com", "xds.route.newest-revision-weight": "10"})
    tasks = [task(old, "pay-6-a", "127.6.0.1"), task(old, "pay-6-b", "127.6.0.2"), task(new, "pay-7-a", "127.7.0.1")]
    return cluster_state(tasks, [old, new], cluster="pay")


def revision_split() -> Mesh:
    return build_mesh([revision_split_state()])


def several_ports_state() -> ClusterState:
    td = task_definition(
        "multi", 3,
        {"xds.service": "multi-grpc", "xds.port": "50051", "xds.route.prefix": "/multi.Grpc/",
         "xds.1.service": "multi-web", "xds.1.port": "8080", "xds.1.protocol": "http1", "xds.1.route.hosts": "multi.example.com"},
        ports=(50051, 8080),
    )
    return cluster_state([task(td, "multi-a", "127.9.0.1", cluster="multi")], [td], cluster="multi")


def several_ports() -> Mesh:
    return build_mesh([several_ports_state()])


FEATURES: dict[str, tuple[tuple[str, int, dict[str, str]], ...]] = {
    "policy_routing": ROUTING,
    "policy_weighted_split": SPLIT,
    "policy_balancing": BALANCING,
    "policy_health_checks": HEALTH,
    "policy_outlier_detection": OUTLIER,
    "policy_circuit_breakers": CIRCUIT_BREAKERS,
    "policy_retries_timeouts": RETRIES_TIMEOUTS,
    "policy_rate_limit": RATE_LIMIT,
    "policy_upstream_tls": UPSTREAM_TLS,
}


def all_policies() -> Mesh:
    """Every feature in one mesh, for Envoy's validation."""
    features = _state(*(s for group in FEATURES.values() for s in group))
    return build_mesh([features, revision_split_state(), several_ports_state()])


SCENARIOS: dict[str, Callable[[], Mesh]] = {
    "single_grpc": single_grpc,
    "grpc_and_http1": grpc_and_http1,
    "draining_two_zones": draining_two_zones,
    "empty": empty,
    "policy_revision_split": revision_split,
    "policy_several_ports": several_ports,
    **{name: (lambda services=services: _mesh(*services)) for name, services in FEATURES.items()},
}


def as_yaml(resources: Resources) -> str:
    document = {
        type_url.short: {
            name: json_format.MessageToDict(message, preserving_proto_field_name=True)
            for name, message in sorted(resources.of(type_url).items())
        }
        for type_url in ORDER
    }
    # MessageToDict gives OrderedDicts for Any fields; plain JSON types keep safe_dump happy.
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=True, default_flow_style=False)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_golden(scenario: str) -> None:
    actual = as_yaml(translate(SCENARIOS[scenario](), ROLE))
    path = GOLDEN / f"{scenario}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert path.exists(), f"{path.name} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"{path.name} differs; if intended, regenerate with UPDATE_GOLDEN=1"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_translation_is_deterministic(scenario: str) -> None:
    first, second = translate(SCENARIOS[scenario](), ROLE), translate(SCENARIOS[scenario](), ROLE)

    def serialized(resources: Resources) -> dict[TypeUrl, dict[str, bytes]]:
        return {
            t: {name: m.SerializeToString(deterministic=True) for name, m in resources.of(t).items()} for t in ORDER
        }

    assert serialized(first) == serialized(second)
    one, two = build_snapshot(first), build_snapshot(second)
    assert [one.version(t) for t in ORDER] == [two.version(t) for t in ORDER]


def test_the_golden_files_show_what_users_rely_on() -> None:
    """A few facts read from the golden content, so a careless regeneration cannot hide them."""
    draining = yaml.safe_load((GOLDEN / "draining_two_zones.yaml").read_text())
    zones = draining["EDS"]["payments"]["endpoints"]
    assert [z["locality"]["zone"] for z in zones] == ["eu-west-1a", "eu-west-1b"]
    assert [
        [(e["endpoint"]["address"]["socket_address"]["address"], e["health_status"]) for e in z["lb_endpoints"]]
        for z in zones
    ] == [
        [("127.0.1.21", "HEALTHY"), ("127.0.1.22", "DRAINING")],
        [("127.0.2.21", "UNHEALTHY"), ("127.0.2.22", "DRAINING")],
    ]
    mixed = yaml.safe_load((GOLDEN / "grpc_and_http1.yaml").read_text())
    options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    assert "http2_protocol_options" in mixed["CDS"]["orders"]["typed_extension_protocol_options"][options]["explicit_http_config"]
    assert "http_protocol_options" in mixed["CDS"]["web"]["typed_extension_protocol_options"][options]["explicit_http_config"]
    assert mixed["EDS"]["web"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 32768
    hosts = {vh["name"]: (vh["domains"], [r["match"]["prefix"] for r in vh["routes"]]) for vh in mixed["RDS"]["edge"]["virtual_hosts"]}
    assert hosts == {
        "_any_": (["*"], ["/status/"]),
        "api.example.com": (["api.example.com"], ["/orders.Orders/", "/status/"]),
        "www.example.com": (["www.example.com"], ["/status/", "/"]),
    }


def static_bootstrap(resources: Resources) -> dict[str, Any]:
    """The generated resources in a static bootstrap: EDS inlined as STATIC load assignments, RDS inlined."""
    bootstrap = bootstrap_pb2.Bootstrap()
    for name, message in sorted(resources.of(TypeUrl.CLUSTER).items()):
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(message)
        cluster.ClearField("eds_cluster_config")
        cluster.type = cluster_pb2.Cluster.STATIC
        cluster.load_assignment.CopyFrom(resources.of(TypeUrl.ENDPOINT)[name])
        bootstrap.static_resources.clusters.append(cluster)
    (route_config,) = resources.of(TypeUrl.ROUTE).values()
    for message in resources.of(TypeUrl.LISTENER).values():
        listener = listener_pb2.Listener()
        listener.CopyFrom(message)
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                manager = hcm_pb2.HttpConnectionManager()
                assert network_filter.typed_config.Unpack(manager)
                manager.route_config.CopyFrom(route_config)
                network_filter.typed_config.Pack(manager)
        bootstrap.static_resources.listeners.append(listener)
    return json_format.MessageToDict(bootstrap, preserving_proto_field_name=True)


def test_envoy_accepts_the_generated_resources(tmp_path: Path) -> None:
    # Every non-empty scenario in one bootstrap (their cluster names do not clash), one Envoy run.
    merged = Resources(by_type={t: {} for t in ORDER})
    for scenario in ("single_grpc", "grpc_and_http1", "draining_two_zones"):
        for type_url in (TypeUrl.CLUSTER, TypeUrl.ENDPOINT):
            merged.by_type[type_url].update(translate(SCENARIOS[scenario](), ROLE).of(type_url))
    mixed = translate(grpc_and_http1(), ROLE)
    merged.by_type[TypeUrl.LISTENER].update(mixed.of(TypeUrl.LISTENER))
    merged.by_type[TypeUrl.ROUTE].update(mixed.of(TypeUrl.ROUTE))
    config = static_bootstrap(merged)
    assert len(config["static_resources"]["clusters"]) == 5
    path = tmp_path / "static.json"
    path.write_text(json.dumps(config, indent=1))

    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration" in result.stdout + result.stderr and "OK" in result.stdout + result.stderr


def test_envoy_accepts_every_policy_together(tmp_path: Path) -> None:
    mesh = all_policies()
    assert [p for p in mesh.problems if p.severity == "error"] == [], mesh.problems
    config = static_bootstrap(translate(mesh, ROLE))
    names = {c["name"] for c in config["static_resources"]["clusters"]}
    assert {"orders", "orders-next", "pay@pay:6", "pay@pay:7", "multi-grpc", "multi-web", "secure", "throttled"} <= names
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(config, indent=1))

    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr


def test_wildcard_hosts_match_with_a_port() -> None:
    td = task_definition("shop", 1, {"xds.service": "shop", "xds.route.hosts": "*.example.com"})
    resources = translate(build_mesh([cluster_state([task(td, "s1", "127.0.0.1")], [td])]), ROLE)
    (config,) = resources.of(TypeUrl.ROUTE).values()
    domains = [d for vh in config.virtual_hosts for d in vh.domains]  # type: ignore[attr-defined]
    assert domains == ["*.example.com"], domains
    # Any port is stripped from Host/:authority before matching, so a.example.com:8080 matches too.
    (listener,) = resources.of(TypeUrl.LISTENER).values()
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)  # type: ignore[attr-defined]
    assert manager.strip_any_host_port
