"""JWT at the edge: the `xds.jwt.*` labels -> the model (precise problems), the model -> Envoy's
jwt_authn filter, the per-route requirement and the JWKS clusters (docs/labels.md, "JWT at the edge")."""

from __future__ import annotations

import json

import pytest
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.labels import parse_container_labels
from controlplane.model.mesh import JwtAuth, ProblemKind
from controlplane.proxy.roles import EdgeRole, SidecarRole
from controlplane.translate import translate
from controlplane.translate.jwt import JWT_AUTHN
from controlplane.xds.types import TypeUrl
from unit.builders import cluster_state, task, task_definition

JWKS = json.dumps({"keys": [{"kty": "RSA", "kid": "k", "n": "sXch", "e": "AQAB"}]})
BASE = {"xds.jwt.issuer": "https://issuer.example.com"}


def _problems(labels: dict[str, str]) -> list[tuple[ProblemKind, str, str]]:
    parsed = parse_container_labels(ContainerDefinition("app", {"xds.service": "orders", **labels}, (PortMapping(50051),)))
    assert not parsed.declarations
    return [(p.kind, p.label, p.message) for p in parsed.problems]


def test_the_labels_give_the_jwt_settings() -> None:
    parsed = parse_container_labels(ContainerDefinition("app", {
        "xds.service": "orders", **BASE, "xds.jwt.audiences": "orders, api,orders", "xds.jwt.jwks-uri": "http://auth:8080/keys",
        "xds.jwt.jwks-service": "auth", "xds.jwt.claim-header.sub": "X-User", "xds.jwt.claim-header.custom:tenant": "x-tenant",
        "xds.jwt.forward": "yes",
    }, (PortMapping(50051),)))
    assert parsed.problems == ()
    assert parsed.declarations[0].policy.jwt == JwtAuth(
        issuer="https://issuer.example.com", audiences=("orders", "api"), jwks_uri="http://auth:8080/keys", jwks_service="auth",
        claim_headers=(("custom:tenant", "x-tenant"), ("sub", "x-user")), forward=True,
    )


def test_an_inline_jwks_is_kept_as_canonical_json() -> None:
    parsed = parse_container_labels(ContainerDefinition("app", {"xds.service": "orders", **BASE, "xds.jwt.jwks": JWKS}, (PortMapping(50051),)))
    jwt = parsed.declarations[0].policy.jwt
    assert jwt is not None and jwt.jwks == json.dumps(json.loads(JWKS), sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize(
    ("labels", "kind", "label", "says"),
    [
        ({"xds.jwt.issuer": "issuer.example.com", "xds.jwt.jwks": JWKS}, ProblemKind.INVALID_VALUE, "xds.jwt.issuer", "http:// or https:// URL"),
        ({"xds.jwt.issuer": "https://x.example.com:70000", "xds.jwt.jwks": JWKS}, ProblemKind.INVALID_VALUE, "xds.jwt.issuer", "port 70000"),
        ({**BASE, "xds.jwt.jwks": '{"keys": [}'}, ProblemKind.INVALID_VALUE, "xds.jwt.jwks", "not JSON: Expecting value at character 11"),
        ({**BASE, "xds.jwt.jwks": '{"keys": []}'}, ProblemKind.INVALID_VALUE, "xds.jwt.jwks", '"keys" must be a non-empty list'),
        ({**BASE, "xds.jwt.jwks": '{"keys": [{"kty": "RSA"}]}'}, ProblemKind.INVALID_VALUE, "xds.jwt.jwks", 'key 1: an RSA key needs "n" and "e"'),
        ({**BASE, "xds.jwt.jwks": "[1]"}, ProblemKind.INVALID_VALUE, "xds.jwt.jwks", "a JSON list, not an object"),
        ({**BASE, "xds.jwt.jwks-uri": "ftp://x/keys"}, ProblemKind.INVALID_VALUE, "xds.jwt.jwks-uri", "where the JWKS is fetched"),
        (BASE, ProblemKind.MISSING_LABEL, "xds.jwt.issuer", "expected with xds.jwt.jwks-uri"),
        ({**BASE, "xds.jwt.jwks": JWKS, "xds.jwt.jwks-uri": "https://a.example.com/k"}, ProblemKind.CONFLICTING_LABELS, "xds.jwt.jwks", "not both"),
        ({**BASE, "xds.jwt.jwks": JWKS, "xds.jwt.jwks-service": "auth"}, ProblemKind.MISSING_LABEL, "xds.jwt.jwks-service", "together with xds.jwt.jwks-uri"),
        ({"xds.jwt.audiences": "a"}, ProblemKind.MISSING_LABEL, "xds.jwt.audiences", "together with xds.jwt.issuer"),
        ({"xds.jwt.claim-header.sub": "x-user"}, ProblemKind.MISSING_LABEL, "xds.jwt.claim-header.sub", "together with xds.jwt.issuer"),
        ({**BASE, "xds.jwt.jwks": JWKS, "xds.jwt.claim-header.sub": "host"}, ProblemKind.INVALID_VALUE, "xds.jwt.claim-header.sub", "host header"),
        (
            {**BASE, "xds.jwt.jwks": JWKS, "xds.jwt.claim-header.sub": "x-a", "xds.jwt.claim-header.email": "x-a"},
            ProblemKind.CONFLICTING_LABELS, "xds.jwt.claim-header.email", "sets header 'x-a' too",
        ),
        ({**BASE, "xds.jwt.jwks-uri": "http://a/k", "xds.jwt.jwks-service": "orders"}, ProblemKind.CONFLICTING_LABELS, "xds.jwt.jwks-service", "itself"),
    ],
)
def test_bad_jwt_labels_are_precise_problems(labels: dict[str, str], kind: ProblemKind, label: str, says: str) -> None:
    problems = _problems(labels)
    assert len(problems) == 1 and problems[0][:2] == (kind, label) and says in problems[0][2], problems


def _mesh(*declared: tuple[str, dict[str, str]]):  # type: ignore[no-untyped-def]
    tds = [task_definition(family, 1, labels) for family, labels in declared]
    tasks = [task(td, f"{td.family}-1", f"127.0.1.{i + 1}", started_at=float(i)) for i, td in enumerate(tds)]
    return build_mesh([cluster_state(tasks, tds)])


def test_a_jwks_service_nobody_declares_refuses_only_that_service() -> None:
    mesh = _mesh(
        ("orders", {"xds.service": "orders", **BASE, "xds.jwt.jwks-uri": "http://auth/keys", "xds.jwt.jwks-service": "auth"}),
        ("users", {"xds.service": "users", "xds.route.prefix": "/users/"}),
    )
    assert [s.name for s in mesh.services] == ["users"]
    (problem,) = mesh.problems
    assert (problem.kind, problem.label, problem.severity, problem.service) == (ProblemKind.UNKNOWN_TARGET, "xds.jwt.jwks-service", "error", "orders")
    assert "no task declares that service" in problem.message


def test_the_edge_gets_the_filter_providers_requirements_and_jwks_clusters_only_when_asked() -> None:
    mesh = _mesh(
        ("orders", {"xds.service": "orders", **BASE, "xds.jwt.jwks-uri": "https://login.example.com/keys", "xds.jwt.claim-header.sub": "x-user"}),
        ("users", {"xds.service": "users", "xds.route.prefix": "/users/", **BASE, "xds.jwt.jwks": JWKS}),
        ("open", {"xds.service": "open", "xds.route.prefix": "/open/", "xds.upstreams": "orders"}),
    )
    edge = translate(mesh, EdgeRole("127.0.0.1", 10000))

    (listener,) = edge.of(TypeUrl.LISTENER).values()
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    names = [f.name for f in manager.http_filters]
    assert names.index("envoy.filters.http.grpc_web") < names.index(JWT_AUTHN) < names.index("envoy.filters.http.router")
    config = jwt_pb2.JwtAuthentication()
    manager.http_filters[names.index(JWT_AUTHN)].typed_config.Unpack(config)
    assert sorted(config.providers) == sorted(config.requirement_map) == ["orders", "users"]
    assert config.providers["orders"].remote_jwks.http_uri.cluster == "jwks:login.example.com:443"
    assert config.providers["users"].local_jwks.inline_string.startswith('{"keys":')
    assert "jwks:login.example.com:443" in edge.of(TypeUrl.CLUSTER)
    requirements = {}
    for vhost in edge.of(TypeUrl.ROUTE)["edge"].virtual_hosts:
        for route in vhost.routes:
            per_route = jwt_pb2.PerRouteConfig()
            if JWT_AUTHN in route.typed_per_filter_config:
                route.typed_per_filter_config[JWT_AUTHN].Unpack(per_route)
            requirements[route.name] = per_route.requirement_name
    assert requirements == {"orders": "orders", "users": "users", "open": ""}

    without = translate(_mesh(("open", {"xds.service": "open"})), EdgeRole("127.0.0.1", 10000))
    (plain,) = without.of(TypeUrl.LISTENER).values()
    assert JWT_AUTHN not in str(plain)
    sidecar = translate(mesh, SidecarRole(service="open"))
    assert not any(name.startswith("jwks:") for name in sidecar.of(TypeUrl.CLUSTER))


def test_jwt_on_a_service_without_a_route_has_no_effect() -> None:
    parsed = parse_container_labels(ContainerDefinition("app", {
        "xds.service": "orders", "xds.route.enabled": "false", **BASE, "xds.jwt.jwks": JWKS,
    }, (PortMapping(50051),)))
    (warning,) = parsed.problems
    assert (warning.kind, warning.label, warning.severity) == (ProblemKind.NO_EFFECT, "xds.jwt.issuer", "warning")
