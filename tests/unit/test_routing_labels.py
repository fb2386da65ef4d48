"""The routing labels of issue 17 -> the model: every label parsed, the defaults, cross-label rules
and precise problems (kind, label, what is accepted); RE2 checked with RE2."""

from __future__ import annotations

import pytest

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.labels import ServiceDeclaration, parse_container_labels
from controlplane.model.mesh import (
    CookieHash,
    Cors,
    Fault,
    HeaderEdits,
    HeaderMatch,
    MatchKind,
    Mirror,
    ProblemKind,
    QueryMatch,
    Rewrite,
)
from controlplane.model.problems import LabelProblem
from controlplane.model.regex import MAX_PROGRAM_SIZE, checked_regex


def _read(labels: dict[str, str], ports: tuple[int, ...] = (50051,)) -> tuple[ServiceDeclaration | None, list[LabelProblem]]:
    parsed = parse_container_labels(ContainerDefinition("app", {"xds.service": "orders", **labels}, tuple(PortMapping(p) for p in ports)))
    return (parsed.declarations[0] if parsed.declarations else None), list(parsed.problems)


def _ok(labels: dict[str, str]) -> ServiceDeclaration:
    declaration, problems = _read(labels)
    assert declaration is not None and problems == [], problems
    return declaration


def _refused(labels: dict[str, str]) -> LabelProblem:
    declaration, problems = _read(labels)
    errors = [p for p in problems if p.severity == "error"]
    assert declaration is None and len(errors) == 1, problems
    assert errors[0].label in {f"xds.{k}" if not k.startswith("xds.") else k for k in labels} | set(labels), errors[0]
    assert errors[0].label in errors[0].message
    return errors[0]


def test_header_matches_of_every_kind_join_the_listed_ones_in_name_order() -> None:
    route = _ok({
        "xds.route.headers": "x-beta=1",
        "xds.route.header.X-Tenant": "prefix:acme-",
        "xds.route.header.x-region": "suffix:-eu",
        "xds.route.header.accept": "contains:json",
        "xds.route.header.user-agent": r"regex:grpc-(python|go)/1\.[0-9]+.*",
        "xds.route.header.x-env": "!exact:prod",
        "xds.route.header.x-debug": "absent",
        "xds.route.header.x-trace": "present",
    }).route
    assert route.headers == (
        HeaderMatch("accept", "json", MatchKind.CONTAINS),
        HeaderMatch("user-agent", r"grpc-(python|go)/1\.[0-9]+.*", MatchKind.REGEX),
        HeaderMatch("x-beta", "1"),
        HeaderMatch("x-debug", None, invert=True),
        HeaderMatch("x-env", "prod", MatchKind.EXACT, invert=True),
        HeaderMatch("x-region", "-eu", MatchKind.SUFFIX),
        HeaderMatch("x-tenant", "acme-", MatchKind.PREFIX),
        HeaderMatch("x-trace"),
    )


def test_query_matches() -> None:
    route = _ok({"xds.route.query.version": "exact:2", "xds.route.query.q": "present", "xds.route.query.Lang": "regex:[a-z]{2}"}).route
    assert route.query == (QueryMatch("Lang", "[a-z]{2}", MatchKind.REGEX), QueryMatch("q"), QueryMatch("version", "2"))


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (r"regex:(a)\1", "backreferences"),
        ("regex:(?=a)b", "lookarounds"),
        ("regex:(?<!a)b", "lookarounds"),
        (r"regex:a\Z", "not RE2 syntax: invalid escape sequence: \\Z"),
        ("regex:a{100}", f"Envoy accepts at most {MAX_PROGRAM_SIZE}"),
        ("regex:[", "missing ]"),
        ("regex:", "needs a value"),
        ("between:1-2", "present, absent, or exact:VALUE"),
        ("!present", "present, absent, or exact:VALUE"),
    ],
)
def test_a_header_match_that_envoy_would_refuse_is_a_precise_problem(value: str, said: str) -> None:
    problem = _refused({"xds.route.header.x-a": value})
    assert problem.kind is ProblemKind.INVALID_VALUE and problem.label == "xds.route.header.x-a"
    assert said in problem.message and "expected present, absent, or exact:VALUE" in problem.message


def test_regexes_are_checked_by_re2_itself() -> None:
    assert checked_regex(r"(?i)^/api/v[0-9]+/(users|orders)/.*$")
    for pattern in ("a++", "(?x) a", "(?P=name)"):
        with pytest.raises(ValueError, match="not RE2 syntax"):
            checked_regex(pattern)


def test_label_family_names_and_counts() -> None:
    bad_key = _refused({"xds.route.header.x y": "present"})
    assert "'x y' after xds.route.header. is not accepted: expected a header name" in bad_key.message
    twice = _refused({"xds.route.header.X-A": "present", "xds.route.header.x-a": "absent"})
    assert twice.kind is ProblemKind.CONFLICTING_LABELS
    both = _refused({"xds.route.headers": "x-a=1", "xds.route.header.x-a": "present"})
    assert both.kind is ProblemKind.CONFLICTING_LABELS and both.label == "xds.route.header.x-a"
    many = {f"xds.route.query.q{i:02}": "present" for i in range(17)}
    assert "at most 16 labels xds.route.query.* are accepted" in _refused(many).message


def test_family_labels_are_known_and_close_typos_are_suggested() -> None:
    declaration, problems = _read({"xds.route.header.x-a": "present", "xds.route.headr.x-a": "present"})
    assert declaration is not None
    assert [(p.label, p.kind) for p in problems] == [("xds.route.headr.x-a", ProblemKind.UNKNOWN_LABEL)]


def test_rewrites_and_header_edits() -> None:
    policy = _ok({
        "xds.route.prefix": "/v2/",
        "xds.route.rewrite.prefix": "/routeguide.RouteGuide/",
        "xds.route.rewrite.host": "Guide.Internal:8443",
        "xds.route.request-headers.add.x-edge": "api 100%",
        "xds.route.request-headers.remove": "x-debug,Cookie,x-debug",
        "xds.route.response-headers.add.cache-control": "no-store, max-age=0",
        "xds.route.response-headers.remove": "server",
    }).policy
    assert policy.rewrite == Rewrite(prefix="/routeguide.RouteGuide/", host="guide.internal:8443")
    assert policy.header_edits == HeaderEdits(
        request_add=(("x-edge", "api 100%"),), request_remove=("x-debug", "cookie"),
        response_add=(("cache-control", "no-store, max-age=0"),), response_remove=("server",),
    )
    assert _ok({"xds.route.rewrite.host": "UPSTREAM"}).policy.rewrite == Rewrite(host_to_upstream=True)


@pytest.mark.parametrize(
    ("labels", "kind", "said"),
    [
        ({"xds.route.request-headers.add.host": "a"}, ProblemKind.INVALID_VALUE, "Envoy does not edit the host header: use route.rewrite.host"),
        ({"xds.route.request-headers.remove": "host"}, ProblemKind.INVALID_VALUE, "use route.rewrite.host"),
        ({"xds.route.rewrite.host": "*.example.com"}, ProblemKind.INVALID_VALUE, "or upstream"),
        ({"xds.route.rewrite.prefix": "v2"}, ProblemKind.INVALID_VALUE, "a path starting with '/'"),
        (
            {"xds.route.response-headers.add.server": "x", "xds.route.response-headers.remove": "server"},
            ProblemKind.CONFLICTING_LABELS, "do one or the other",
        ),
    ],
)
def test_rewrite_and_header_edit_problems(labels: dict[str, str], kind: ProblemKind, said: str) -> None:
    problem = _refused(labels)
    assert problem.kind is kind and said in problem.message


def test_grpc_web_and_cors_with_the_grpc_web_defaults() -> None:
    policy = _ok({"xds.grpc-web": "true", "xds.cors.allow-origins": "https://App.example.com,https://*.preview.example.com", "xds.cors.max-age": "10m"}).policy
    assert policy.grpc_web
    assert policy.cors == Cors(
        allow_origins=("https://app.example.com", "https://*.preview.example.com"),
        allow_headers=("content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"),
        expose_headers=("grpc-status", "grpc-message"),
        max_age_s=600,
    )
    plain = _ok({"xds.cors.allow-origins": "*", "xds.cors.allow-methods": "get,put"}).policy
    assert plain.cors == Cors(allow_origins=("*",), allow_methods=("GET", "PUT"), allow_headers=("content-type",))
    assert not plain.grpc_web


@pytest.mark.parametrize(
    ("labels", "kind", "label", "said"),
    [
        ({"xds.grpc-web": "true", "xds.protocol": "http1"}, ProblemKind.CONFLICTING_LABELS, "xds.grpc-web", "protocol grpc (it is http1)"),
        ({"xds.cors.max-age": "1m"}, ProblemKind.MISSING_LABEL, "xds.cors.max-age", "together with xds.cors.allow-origins"),
        ({"xds.cors.allow-origins": "ftp://a.example.com"}, ProblemKind.INVALID_VALUE, "xds.cors.allow-origins", "'ftp://a.example.com' is not an origin"),
        ({"xds.cors.allow-origins": "*", "xds.cors.allow-credentials": "true"}, ProblemKind.CONFLICTING_LABELS, "xds.cors.allow-credentials", "name the origins"),
        ({"xds.cors.allow-origins": "*", "xds.cors.max-age": "1.5s"}, ProblemKind.INVALID_VALUE, "xds.cors.max-age", "not a whole number of seconds"),
    ],
)
def test_browser_problems(labels: dict[str, str], kind: ProblemKind, label: str, said: str) -> None:
    problem = _refused(labels)
    assert (problem.kind, problem.label) == (kind, label) and said in problem.message


def test_cookie_stickiness_beside_header_hashing() -> None:
    lb = _ok({"xds.lb.policy": "ring_hash", "xds.lb.hash-cookie": "affinity", "xds.lb.hash-cookie-ttl": "1h"}).policy.load_balancing
    assert (lb.hash_cookie, lb.hash_header) == (CookieHash("affinity", 3_600_000), None)
    assert _ok({"xds.lb.policy": "maglev", "xds.lb.hash-cookie": "s"}).policy.load_balancing.hash_cookie == CookieHash("s", 0)
    assert _ok({"xds.lb.policy": "maglev", "xds.lb.hash-cookie": "s", "xds.lb.hash-cookie-ttl": "off"}).policy.load_balancing.hash_cookie == CookieHash("s", None)
    both = _refused({"xds.lb.policy": "maglev", "xds.lb.hash-cookie": "s", "xds.lb.hash-header": "x-user"})
    assert (both.kind, both.label) == (ProblemKind.CONFLICTING_LABELS, "xds.lb.hash-cookie")
    unhashed = _refused({"xds.lb.hash-cookie": "s"})
    assert "expected with xds.lb.policy ring_hash or maglev (it is round_robin)" in unhashed.message
    alone = _refused({"xds.lb.hash-cookie-ttl": "1h"})
    assert alone.kind is ProblemKind.MISSING_LABEL
    assert "lb.hash-header or xds.lb.hash-cookie" in _refused({"xds.lb.policy": "maglev"}).message


def test_mirror_and_faults() -> None:
    policy = _ok({
        "xds.mirror.service": "orders-next", "xds.mirror.percent": "12.5%",
        "xds.fault.delay": "1.5s", "xds.fault.delay-percent": "10",
        "xds.fault.abort": "resource-exhausted", "xds.fault.abort-percent": "50", "xds.fault.headers": "x-chaos",
    }).policy
    assert policy.mirror == Mirror("orders-next", 12.5)
    assert policy.fault == Fault(delay_ms=1500, delay_percent=10.0, abort_grpc_status=8, abort_percent=50.0, headers=(HeaderMatch("x-chaos"),))
    http = _ok({"xds.protocol": "http1", "xds.fault.abort": "503"}).policy.fault
    assert http == Fault(abort_http_status=503)


@pytest.mark.parametrize(
    ("labels", "kind", "label", "said"),
    [
        ({"xds.mirror.service": "orders"}, ProblemKind.CONFLICTING_LABELS, "xds.mirror.service", "names the service itself"),
        ({"xds.mirror.percent": "5"}, ProblemKind.MISSING_LABEL, "xds.mirror.percent", "together with xds.mirror.service"),
        ({"xds.fault.abort": "UNAVAILABLE", "xds.protocol": "http1"}, ProblemKind.CONFLICTING_LABELS, "xds.fault.abort", "give an HTTP status"),
        ({"xds.fault.abort": "OK"}, ProblemKind.INVALID_VALUE, "xds.fault.abort", "a gRPC status name such as UNAVAILABLE"),
        ({"xds.fault.abort": "302"}, ProblemKind.INVALID_VALUE, "xds.fault.abort", "an HTTP status 400-599"),
        ({"xds.fault.abort-percent": "5"}, ProblemKind.MISSING_LABEL, "xds.fault.abort-percent", "together with xds.fault.abort"),
        ({"xds.fault.headers": "x-chaos"}, ProblemKind.MISSING_LABEL, "xds.fault.headers", "xds.fault.delay or xds.fault.abort"),
        ({"xds.fault.delay": "2h"}, ProblemKind.INVALID_VALUE, "xds.fault.delay", "from 1ms to 1h"),
        ({"xds.fault.delay": "1s", "xds.fault.delay-percent": "0"}, ProblemKind.INVALID_VALUE, "xds.fault.delay-percent", "more than 0"),
    ],
)
def test_mirror_and_fault_problems(labels: dict[str, str], kind: ProblemKind, label: str, said: str) -> None:
    problem = _refused(labels)
    assert (problem.kind, problem.label) == (kind, label) and said in problem.message
