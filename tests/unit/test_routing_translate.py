"""The routing features in Envoy's terms: filter chains per role, per-route configs, percents, literal
header values, origins, the sidecar's by-name route of a rewritten service, mirror clusters."""

from __future__ import annotations

from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from controlplane.model.build import build_mesh
from controlplane.model.limits import route_bytes
from controlplane.model.mesh import Cors
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, SidecarRole
from controlplane.translate import translate
from controlplane.translate.browser import cors_policy
from controlplane.translate.route_features import fractional_percent
from controlplane.xds.types import TypeUrl
from unit.builders import cluster_state, task, task_definition

EDGE = EdgeRole("127.0.0.1", 10000)


def _mesh(*declared: tuple[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    tds = [task_definition(family, 1, labels) for family, labels in declared]
    return build_mesh([cluster_state([task(td, td.family, f"127.0.0.{i + 1}") for i, td in enumerate(tds)], tds)])


def _filters(listener) -> list[tuple[str, bool]]:  # type: ignore[no-untyped-def]
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

    manager = hcm_pb2.HttpConnectionManager()
    packed = listener.api_listener.api_listener if listener.HasField("api_listener") else listener.filter_chains[0].filters[0].typed_config
    packed.Unpack(manager)
    return [(f.name, f.disabled) for f in manager.http_filters]


def test_envoys_carry_cors_grpc_web_off_and_fault_before_the_rate_limit_and_grpc_clients_none() -> None:
    mesh = _mesh(("guide", {"xds.service": "guide"}), ("caller", {"xds.service": "caller", "xds.upstreams": "guide", "xds.route.enabled": "false"}))
    edge = _filters(translate(mesh, EDGE).of(TypeUrl.LISTENER)["edge"])
    assert edge[-5:] == [
        ("envoy.filters.http.cors", False), ("envoy.filters.http.grpc_web", True), ("envoy.filters.http.fault", False),
        ("envoy.filters.http.local_ratelimit", False), ("envoy.filters.http.router", False),
    ]
    sidecar = _filters(translate(mesh, SidecarRole(service="caller")).of(TypeUrl.LISTENER)["outbound"])
    assert [name for name, _ in sidecar][:3] == ["envoy.filters.http.cors", "envoy.filters.http.grpc_web", "envoy.filters.http.fault"]
    client = _filters(translate(mesh, GrpcClientRole(service="caller")).of(TypeUrl.LISTENER)["guide"])
    assert client == [("envoy.filters.http.router", False)]


def test_only_the_routes_that_ask_get_per_route_configs() -> None:
    mesh = _mesh(
        ("web", {"xds.service": "web", "xds.route.prefix": "/web/", "xds.grpc-web": "true", "xds.cors.allow-origins": "*", "xds.fault.abort": "UNAVAILABLE"}),
        ("plain", {"xds.service": "plain"}),
    )
    (config,) = translate(mesh, EDGE).of(TypeUrl.ROUTE).values()
    routes = {r.name: r for vh in config.virtual_hosts for r in vh.routes}  # type: ignore[attr-defined]
    assert sorted(routes["web"].typed_per_filter_config) == ["envoy.filters.http.cors", "envoy.filters.http.fault", "envoy.filters.http.grpc_web"]
    assert not routes["plain"].typed_per_filter_config
    fault = fault_pb2.HTTPFault()
    routes["web"].typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
    assert fault.abort.grpc_status == 14 and fault.abort_percent_runtime == "fault.web.abort.abort_percent"


def test_percents_are_exact_where_they_can_be() -> None:
    assert (fractional_percent(25).numerator, fractional_percent(25).denominator) == (25, 0)  # HUNDRED
    assert (fractional_percent(12.5).numerator, fractional_percent(12.5).denominator) == (125_000, 2)  # MILLION
    assert fractional_percent(0.0001).numerator == 1


def test_header_values_are_literal_and_origins_wildcards_become_anchored_regexes() -> None:
    mesh = _mesh(("web", {"xds.service": "web", "xds.route.request-headers.add.x-discount": "100%"}))
    (config,) = translate(mesh, EDGE).of(TypeUrl.ROUTE).values()
    (added,) = config.virtual_hosts[0].routes[0].request_headers_to_add  # type: ignore[attr-defined]
    assert added.header.value == "100%%"
    policy = cors_pb2.CorsPolicy()
    cors_policy(Cors(allow_origins=("*", "https://a.example.com", "https://*.example.com:8443"))).Unpack(policy)
    origins = [m.exact or m.safe_regex.regex for m in policy.allow_origin_string_match]
    assert origins == ["*", "https://a.example.com", r"https://[a-z0-9.-]+\.example\.com:8443"]


def test_a_sidecar_reaches_a_rewritten_service_by_name_only_under_its_prefix_and_gets_the_mirror_cluster() -> None:
    mesh = _mesh(
        ("guide", {"xds.service": "guide", "xds.route.prefix": "/v2/", "xds.route.rewrite.prefix": "/routeguide.RouteGuide/", "xds.mirror.service": "shadow"}),
        ("shadow", {"xds.service": "shadow", "xds.route.enabled": "false"}),
        ("caller", {"xds.service": "caller", "xds.upstreams": "guide"}),
    )
    resources = translate(mesh, SidecarRole(service="caller"))
    outbound = resources.of(TypeUrl.ROUTE)["outbound"]
    by_name = next(vh for vh in outbound.virtual_hosts if vh.domains == ["guide"])  # type: ignore[attr-defined]
    assert by_name.routes[0].match.prefix == "/v2/" and by_name.routes[0].route.prefix_rewrite == "/routeguide.RouteGuide/"
    assert sorted(resources.of(TypeUrl.CLUSTER)) == ["guide", "shadow"]


def test_the_byte_estimate_stays_an_upper_bound_with_every_routing_feature() -> None:
    labels = {
        "xds.service": "svc", "xds.route.prefix": "/v2/", "xds.route.header.x-a": r"regex:[a-z]+-[0-9]{2}", "xds.route.header.x-b": "!prefix:no",
        "xds.route.query.q": "contains:abc", "xds.route.rewrite.prefix": "/svc.Svc/", "xds.route.rewrite.host": "svc.internal",
        "xds.route.request-headers.add.x-team": "platform", "xds.route.response-headers.remove": "server",
        "xds.grpc-web": "true", "xds.cors.allow-origins": "https://*.example.com,https://app.example.com", "xds.cors.max-age": "1h",
        "xds.lb.policy": "ring_hash", "xds.lb.hash-cookie": "affinity", "xds.lb.hash-cookie-ttl": "1h",
        "xds.mirror.service": "other", "xds.mirror.percent": "12.5", "xds.fault.delay": "1s", "xds.fault.abort": "UNAVAILABLE",
        "xds.fault.abort-percent": "0.5", "xds.fault.headers": "x-chaos=1",
    }
    mesh = _mesh(("svc", labels), ("other", {"xds.service": "other", "xds.route.enabled": "false"}))
    service = mesh.service("svc")
    assert service is not None and mesh.problems == ()
    (config,) = translate(mesh, EDGE).of(TypeUrl.ROUTE).values()
    real = config.virtual_hosts[0].routes[0].ByteSize()  # type: ignore[attr-defined]
    assert real <= route_bytes(service) < 2 * real
