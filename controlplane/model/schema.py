"""The labels we read: for each, its name under the prefix, its grammar and its default.

A container declares its first service with `<prefix><label>` and further services (other ports of
the same container) with indexed labels `<prefix><n>.<label>`, n = 1..9; an indexed declaration
does not inherit the unindexed labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.model import grammar as g
from controlplane.model import json_grammar as jg
from controlplane.model import jwt_grammar as jwtg
from controlplane.model import route_grammar as rg
from controlplane.model.mesh import HealthCheckKind, LbPolicy, LocalityMode, Protocol, RetryPolicy

DEFAULT_PREFIX = "xds."
MAX_INDEX = 9
# A label value longer than this is refused before it is parsed (32 hosts of 120 characters fit).
MAX_VALUE_CHARS = 4096

# gRPC statuses Envoy can retry on (x-envoy-retry-grpc-on) and the connection-level conditions.
GRPC_RETRY_ON = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
CONNECTION_RETRY_ON = ("connect-failure", "refused-stream", "reset-before-request", "reset", "gateway-error", "5xx")


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label we read: its name under the prefix, its grammar, its default and a note on its use."""

    name: str
    grammar: g.Grammar[Any]
    default: str | None
    note: str = ""

    @property
    def expected(self) -> str:
        return self.grammar.expected + (f", {self.note}" if self.note else "")


_DAY = g.DAY_MS
LABELS: tuple[LabelSpec, ...] = (
    # identity and routing
    LabelSpec("service", g.SERVICE_NAME, None),
    LabelSpec("port", g.Integer(1, 65535), None, "a containerPort of this container's portMappings"),
    LabelSpec("protocol", g.Choice(Protocol), "grpc"),
    LabelSpec("route.hosts", g.Hosts(), "*"),
    LabelSpec("route.prefix", g.PATH, "/", "e.g. /routeguide.RouteGuide/"),
    LabelSpec("route.method", g.GRPC_METHOD, None),
    LabelSpec("route.headers", g.Headers(), None),
    LabelSpec("route.priority", g.Integer(0, 1000), "0", "higher matches first among one host's own routes"),
    LabelSpec("route.enabled", g.BOOLEAN, "true"),
    LabelSpec("route.weights", g.Weights(), None),
    LabelSpec("route.newest-revision-weight", g.Integer(0, 100), None, "the percent of calls for the newest task-definition revision"),
    LabelSpec("upstreams", g.ServiceNames(), ""),
    LabelSpec("route.port", g.Integer(1, 65535), None, "with protocol tcp: the port proxies listen on for the service's connections"),
    # balancing
    LabelSpec("lb.policy", g.Choice(LbPolicy), "round_robin"),
    LabelSpec("lb.hash-header", g.HEADER_NAME, None, "used with lb.policy ring_hash or maglev"),
    LabelSpec("lb.slow-start", g.Duration(1, _DAY), None, "used with lb.policy round_robin or least_request"),
    LabelSpec("lb.locality", g.Choice(LocalityMode), "none"),
    LabelSpec("lb.zone-min-tasks", g.Integer(1, 10_000), None, "used with lb.locality zone-aware (unset: Envoy's 6)"),
    # active health check
    LabelSpec("health.check", g.Choice(HealthCheckKind), "none"),
    LabelSpec("health.grpc-service", g.GRPC_SERVICE, "", "with health.check=grpc"),
    LabelSpec("health.path", g.PATH, "/healthz", "with health.check=http"),
    LabelSpec("health.interval", g.Duration(100, _DAY), "5s"),
    LabelSpec("health.timeout", g.Duration(10, _DAY), "1s", "shorter than health.interval"),
    LabelSpec("health.healthy-threshold", g.Integer(1, 100), "2"),
    LabelSpec("health.unhealthy-threshold", g.Integer(1, 100), "2"),
    # outlier detection
    LabelSpec("outlier.consecutive-5xx", g.Integer(1, 1000), None),
    LabelSpec("outlier.consecutive-gateway-errors", g.Integer(1, 1000), None),
    LabelSpec("outlier.consecutive-local-origin-failures", g.Integer(1, 1000), None),
    LabelSpec("outlier.failure-percent", g.Integer(1, 100), None, "the share of failed calls in an interval that ejects a task"),
    LabelSpec("outlier.failure-min-requests", g.Integer(1, 100_000), "50", "used with outlier.failure-percent: a task's calls in an interval"),
    LabelSpec("outlier.failure-min-tasks", g.Integer(1, 1000), "5", "used with outlier.failure-percent: the tasks a service needs"),
    LabelSpec("outlier.interval", g.Duration(100, _DAY), "5s"),
    LabelSpec("outlier.ejection-time", g.Duration(100, _DAY), "30s"),
    LabelSpec("outlier.max-ejection-percent", g.Integer(1, 100), "50"),
    # circuit breakers
    LabelSpec("circuit-breaker.max-connections", g.Integer(1, 1_000_000), "1024"),
    LabelSpec("circuit-breaker.max-pending-requests", g.Integer(1, 1_000_000), "1024"),
    LabelSpec("circuit-breaker.max-requests", g.Integer(1, 1_000_000), "1024"),
    LabelSpec("circuit-breaker.max-retries", g.Integer(0, 1_000_000), "32"),
    # retries and timeouts
    LabelSpec("retry.on", g.Conditions(GRPC_RETRY_ON + CONNECTION_RETRY_ON), ",".join(RetryPolicy().retry_on)),
    LabelSpec("retry.attempts", g.Integer(0, 10), "2", "retries after the first try"),
    LabelSpec("retry.per-try-timeout", g.Duration(1, _DAY), None),
    LabelSpec("retry.budget", g.Percent(), None, "the share of active calls that may be retries"),
    LabelSpec("timeout.route", g.Duration(0, _DAY), "0", "0 means none"),
    LabelSpec("timeout.idle", g.Duration(1, _DAY), None),
    LabelSpec("timeout.max-stream-duration", g.Duration(1, _DAY), None),
    LabelSpec(
        "timeout.grpc-max",
        g.OrWords((("off", None), ("unlimited", 0)), g.Duration(0, _DAY), "0 (or unlimited) to honour any grpc-timeout, or off to ignore it"),
        "0",
    ),
    # rate limit
    LabelSpec("ratelimit.average", g.Integer(1, 1_000_000), None, "calls per ratelimit.period"),
    LabelSpec("ratelimit.period", g.Duration(50, _DAY), "1s"),
    LabelSpec("ratelimit.burst", g.Integer(1, 1_000_000), None, "at least ratelimit.average"),
    # upstream TLS
    LabelSpec("scheme", g.Words((("plain", False), ("tls", True)), "one of plain, tls"), "plain"),
    LabelSpec("tls.sni", g.SNI, None, "the TLS server name sent to the task, with scheme=tls"),
    # rewrites and header edits (docs/labels.md, "Rewrites and headers")
    LabelSpec("route.rewrite.prefix", g.PATH, None, "replaces the matched route.prefix (or the whole path of a route.method)"),
    LabelSpec("route.rewrite.host", rg.HostRewrite(), None),
    LabelSpec("route.request-headers.remove", rg.HeaderNames(editable=True), None),
    LabelSpec("route.response-headers.remove", rg.HeaderNames(editable=True), None),
    # browsers (docs/labels.md, "Browsers: gRPC-Web and CORS")
    LabelSpec("grpc-web", g.BOOLEAN, "false", "with protocol grpc"),
    LabelSpec("cors.allow-origins", rg.Origins(), None),
    LabelSpec("cors.allow-methods", rg.Methods(), "GET,POST,OPTIONS", "with cors.allow-origins"),
    LabelSpec("cors.allow-headers", rg.HeaderNames(rg.MAX_CORS_ITEMS), None, "with cors.allow-origins"),
    LabelSpec("cors.expose-headers", rg.HeaderNames(rg.MAX_CORS_ITEMS), None, "with cors.allow-origins"),
    LabelSpec("cors.max-age", rg.WholeSeconds(), None, "with cors.allow-origins"),
    LabelSpec("cors.allow-credentials", g.BOOLEAN, "false", "with cors.allow-origins"),
    # stickiness by cookie
    LabelSpec("lb.hash-cookie", rg.COOKIE_NAME, None, "used with lb.policy ring_hash or maglev"),
    LabelSpec(
        "lb.hash-cookie-ttl",
        g.OrWords((("off", None),), g.Duration(0, _DAY), "0 for a session cookie, or off (Envoy never sets the cookie)"),
        "0",
        "with lb.hash-cookie",
    ),
    # mirroring and fault injection
    LabelSpec("mirror.service", g.SERVICE_NAME, None),
    LabelSpec("mirror.percent", g.Percent(), "100", "with mirror.service"),
    LabelSpec("fault.delay", g.Duration(1, 3_600_000), None),
    LabelSpec("fault.delay-percent", g.Percent(), "100", "with fault.delay"),
    LabelSpec("fault.abort", rg.AbortStatus(), None),
    LabelSpec("fault.abort-percent", g.Percent(), "100", "with fault.abort"),
    LabelSpec("fault.headers", g.Headers(), None, "only calls with these headers get the faults"),
    # JWT at the edge (docs/labels.md, "JWT at the edge")
    LabelSpec("jwt.issuer", jwtg.Url("the issuer (the token's iss claim)"), None),
    LabelSpec("jwt.audiences", jwtg.Audiences(), None, "with jwt.issuer"),
    LabelSpec("jwt.jwks-uri", jwtg.Url("where the JWKS is fetched"), None, "with jwt.issuer, not with jwt.jwks"),
    LabelSpec("jwt.jwks-service", g.SERVICE_NAME, None, "the service whose cluster serves jwt.jwks-uri"),
    LabelSpec("jwt.jwks", jg.Jwks(), None, "with jwt.issuer, not with jwt.jwks-uri"),
    LabelSpec("jwt.forward", g.BOOLEAN, "false", "with jwt.issuer"),
    # the escape hatch (docs/labels.md, "Escape hatch")
    LabelSpec("patch.cluster", jg.MergePatch("service's Cluster"), None),
    LabelSpec("patch.route", jg.MergePatch("service's Route"), None),
)
SPECS: Mapping[str, LabelSpec] = {spec.name: spec for spec in LABELS}


@dataclass(frozen=True, slots=True)
class LabelFamily:
    """Labels whose name ends in a part the user chooses: `route.header.<header name>`."""

    prefix: str
    key: g.Pattern
    grammar: g.Grammar[Any]
    max_count: int
    example_key: str

    @property
    def name(self) -> str:
        return f"{self.prefix}<{self.example_key}>"


FAMILIES: tuple[LabelFamily, ...] = (
    LabelFamily("route.header.", rg.HEADER_KEY, rg.HeaderCondition(), g.MAX_HEADER_MATCHES, "x-tenant"),
    LabelFamily("route.query.", rg.QUERY_KEY, rg.QueryCondition(), g.MAX_HEADER_MATCHES, "version"),
    LabelFamily("route.request-headers.add.", rg.HEADER_KEY, rg.HeaderValue(), rg.MAX_HEADER_EDITS, "x-team"),
    LabelFamily("route.response-headers.add.", rg.HEADER_KEY, rg.HeaderValue(), rg.MAX_HEADER_EDITS, "cache-control"),
    LabelFamily("jwt.claim-header.", jwtg.CLAIM_KEY, rg.HEADER_KEY, jwtg.MAX_CLAIM_HEADERS, "sub"),
)


def family_of(name: str) -> LabelFamily | None:
    """The family a label name (under the prefix, without index) belongs to."""
    for family in FAMILIES:
        if name.startswith(family.prefix) and len(name) > len(family.prefix):
            return family
    return None


def declaration_prefixes(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The label prefixes of every service a container declares: `xds.`, then `xds.1.`..`xds.9.`."""
    found = [prefix] if prefix + "service" in labels else []
    found += [f"{prefix}{n}." for n in range(1, MAX_INDEX + 1) if f"{prefix}{n}.service" in labels]
    return found
