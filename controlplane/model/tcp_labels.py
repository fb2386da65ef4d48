"""The label rules of TCP services (`xds.protocol=tcp`, docs/labels.md "TCP services"). Pure.

A TCP service is proxied as bytes and balanced per connection (weights split connections): every
label that acts on HTTP calls (routes, retries, timeouts per call, hashing, rate limits, browsers,
mirrors, faults, HTTP statuses) is an error on it, named with what to do instead, rather than silently ignored. A TCP service needs
`xds.route.port`, the port proxies listen on for it; no other protocol takes that label. Its
`xds.route.hosts` are the TLS SNI names it takes on that port (several TCP services share a port by
SNI); `*` (the default) is the port's catch-all.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol as TypingProtocol

from controlplane.model.mesh import HealthCheckKind, LbPolicy, ProblemKind, Protocol
from controlplane.model.problems import LabelProblem
from controlplane.model.route_labels import LabelReader
from controlplane.model.schema import FAMILIES, SPECS

_NO_ROUTE = "a tcp service has no HTTP route: proxies take its connections on {p}route.port"
_PER_CALL = "it acts on HTTP calls, and a tcp service's connections carry none"
# Label (under the prefix) -> why it does not apply to a TCP service ({p} is the label prefix).
HTTP_ONLY: Mapping[str, str] = MappingProxyType({
    **{name: _NO_ROUTE for name in (
        "route.prefix", "route.method", "route.headers", "route.priority",
        "route.rewrite.prefix", "route.rewrite.host", "route.request-headers.remove", "route.response-headers.remove",
    )},
    **{name: "a tcp service balances connections: there is no header or cookie to hash" for name in (
        "lb.hash-header", "lb.hash-cookie", "lb.hash-cookie-ttl",
    )},
    **{name: "a tcp connection is not retried once up; a failed connect is tried again on another task (3 attempts)" for name in (
        "retry.on", "retry.attempts", "retry.per-try-timeout", "retry.budget",
    )},
    **{name: "it times HTTP calls: {p}timeout.idle closes idle tcp connections" for name in (
        "timeout.route", "timeout.max-stream-duration", "timeout.grpc-max",
    )},
    **{name: "it limits HTTP calls: {p}circuit-breaker.max-connections limits tcp connections" for name in (
        "circuit-breaker.max-requests", "circuit-breaker.max-retries", "ratelimit.average", "ratelimit.period", "ratelimit.burst",
    )},
    **{name: "it counts HTTP statuses: {p}outlier.consecutive-local-origin-failures counts failed tcp connects" for name in (
        "outlier.consecutive-5xx", "outlier.consecutive-gateway-errors",
        "outlier.failure-percent", "outlier.failure-min-requests", "outlier.failure-min-tasks",
    )},
    **{name: _PER_CALL for name in (
        "grpc-web", "cors.allow-origins", "cors.allow-methods", "cors.allow-headers", "cors.expose-headers", "cors.max-age",
        "cors.allow-credentials", "mirror.service", "mirror.percent", "fault.delay", "fault.delay-percent", "fault.abort",
        "fault.abort-percent", "fault.headers",
    )},
})


class _Reader(LabelReader, TypingProtocol):
    """A label reader whose problems this module may replace."""

    labels: Mapping[str, str]
    problems: list[LabelProblem]


_TCP_POLICIES = (LbPolicy.ROUND_ROBIN, LbPolicy.LEAST_REQUEST, LbPolicy.RANDOM)
_TCP_CHECKS = (HealthCheckKind.TCP, HealthCheckKind.NONE)


def check_protocol_labels(read: _Reader, protocol: Protocol) -> None:
    """Record the problems of labels that do not fit `protocol`; for a TCP service, each replaces
    whatever else was found wrong with that label (the protocol is what the user must change)."""
    p = read.prefix
    if protocol is not Protocol.TCP:
        if read.is_set("route.port") and read.parsed("protocol"):
            read.error("route.port", f"expected with {p}protocol=tcp (it is {protocol.value}): HTTP services are routed by host and path", ProblemKind.CONFLICTING_LABELS)
        return
    found = {name: reason.format(p=p) for name, reason in HTTP_ONLY.items() if read.is_set(name)}
    for family in FAMILIES:  # header and query matches, header edits: all HTTP
        found.update({name: _NO_ROUTE.format(p=p) for name in read.family_names(family)})
    if _value(read, "lb.policy") not in (None, *_TCP_POLICIES):
        found["lb.policy"] = "expected round_robin, least_request or random: a tcp connection carries no header or cookie to hash"
    if _value(read, "health.check") not in (None, *_TCP_CHECKS):
        found["health.check"] = "expected tcp (Envoy connects, nothing more) or none"
    keys = {p + name for name in found}
    read.problems[:] = [problem for problem in read.problems if problem.label not in keys]
    for name, reason in sorted(found.items()):
        read.error(name, f"not with {p}protocol=tcp: {reason}", ProblemKind.CONFLICTING_LABELS)
    hosts = _value(read, "route.hosts")
    if isinstance(hosts, tuple) and "*" in hosts and len(hosts) > 1:
        read.error(
            "route.hosts",
            "'*' is the port's catch-all (every connection no other service's SNI name takes): give it alone, or only SNI names",
            ProblemKind.CONFLICTING_LABELS,
        )
    if not read.is_set("route.port"):
        read.error("protocol", f"a tcp service needs {p}route.port: the port the edge and sidecars listen on for its connections", ProblemKind.MISSING_LABEL)


def _value(read: _Reader, name: str) -> object:
    """The label's parsed value, None when unset or malformed (its problem is recorded already)."""
    raw = read.labels.get(read.prefix + name)
    try:
        return None if raw is None else SPECS[name].grammar.parse(raw.strip())
    except ValueError:
        return None
