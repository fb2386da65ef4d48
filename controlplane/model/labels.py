"""Docker labels on a container definition -> service declarations, or LabelErrors. Pure.

The schema is the LABELS table: every label we read, what it expects, its default and its parser.
A container declares its first service with `<prefix><label>` and further services (other ports of
the same container) with indexed labels `<prefix><n>.<label>`, n = 1..9; an indexed declaration
does not inherit the unindexed labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.discovery.state import ContainerDefinition
from controlplane.errors import LabelError
from controlplane.model.mesh import (
    CircuitBreakers,
    HeaderMatch,
    HealthCheck,
    HealthCheckKind,
    LbPolicy,
    LoadBalancing,
    LocalityMode,
    OutlierDetection,
    Protocol,
    RateLimit,
    RetryPolicy,
    RouteMatch,
    Split,
    Timeouts,
    TrafficPolicy,
    UpstreamTls,
    WeightedTarget,
)

DEFAULT_PREFIX = "xds."
MAX_INDEX = 9

_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*)$")
_SNI = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_GRPC_METHOD = re.compile(r"^/[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*$")
_GRPC_SERVICE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?$")
_HEADER_NAME = re.compile(r"^[a-z0-9!#$%&'*+.^_`|~-]+$")
_HEADER_VALUE = re.compile(r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_INDEXED = re.compile(r"^([1-9])\.(.+)$")

# gRPC statuses Envoy can retry on (x-envoy-retry-grpc-on) and the connection-level conditions.
GRPC_RETRY_ON = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
CONNECTION_RETRY_ON = ("connect-failure", "refused-stream", "reset-before-request", "reset", "gateway-error", "5xx")


@dataclass(frozen=True, slots=True)
class ServiceDeclaration:
    """What one container declares about one service it serves."""

    name: str
    container: str
    container_port: int
    protocol: Protocol
    route: RouteMatch
    policy: TrafficPolicy = TrafficPolicy()
    split: Split | None = None
    newest_revision_weight: int | None = None
    upstreams: tuple[str, ...] = ()

    def settings(self) -> tuple[object, ...]:
        """Everything but the container name: what revisions of one service may disagree on."""
        return (
            self.protocol, self.route, self.container_port, self.policy, self.split,
            self.newest_revision_weight, self.upstreams,
        )


# -- value parsers: raise ValueError on a bad value ----------------------------------------------


def _service_name(raw: str) -> str:
    if not _SERVICE_NAME.match(raw):
        raise ValueError(raw)
    return raw


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(raw)
    return int(raw)


def _protocol(raw: str) -> Protocol:
    return Protocol(raw.lower())


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(sorted({host.strip().lower() for host in raw.split(",") if host.strip()}))
    if not hosts or not all(_HOST.match(host) for host in hosts):
        raise ValueError(raw)
    return hosts


def _path_prefix(raw: str) -> str:
    if not _PATH_PREFIX.match(raw):
        raise ValueError(raw)
    return raw


def _grpc_method(raw: str) -> str:
    if not _GRPC_METHOD.match(raw):
        raise ValueError(raw)
    return raw


def _headers(raw: str) -> tuple[HeaderMatch, ...]:
    found: dict[str, HeaderMatch] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if not _HEADER_NAME.match(name) or name.startswith(":") or name in found:
            raise ValueError(raw)
        if "=" in item:
            value = value.strip()
            if not _HEADER_VALUE.match(value):
                raise ValueError(raw)
            found[name] = HeaderMatch(name, value)
        else:
            found[name] = HeaderMatch(name)
    if not found:
        raise ValueError(raw)
    return tuple(sorted(found.values(), key=lambda h: h.name))


def _header_name(raw: str) -> str:
    lowered = raw.lower()
    if not _HEADER_NAME.match(lowered):
        raise ValueError(raw)
    return lowered


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ValueError(raw)
        return int(raw)

    return parse


def _percent(raw: str) -> float:
    value = float(raw.rstrip("%"))
    if not 0 < value <= 100 or raw.lower() in ("nan", "inf"):
        raise ValueError(raw)
    return value


def _duration(minimum_ms: int = 1, maximum_ms: int = 24 * 3_600_000) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        match = _DURATION.match(raw.lower())
        if not match:
            raise ValueError(raw)
        ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
        if ms != int(ms) or not minimum_ms <= ms <= maximum_ms:
            raise ValueError(raw)
        return int(ms)

    return parse


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise ValueError(raw)


def _weights(raw: str) -> Split:
    targets: dict[str, int] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        name, sep, weight = item.partition(":")
        name, weight = name.strip(), weight.strip()
        if not sep or not _SERVICE_NAME.match(name) or name in targets or not weight.isdigit() or int(weight) > 10_000:
            raise ValueError(raw)
        targets[name] = int(weight)
    if not targets or sum(targets.values()) == 0:
        raise ValueError(raw)
    return Split(tuple(WeightedTarget(name, weight) for name, weight in sorted(targets.items())))


def _retry_on(raw: str) -> tuple[str, ...]:
    conditions = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    if not conditions or not all(c in GRPC_RETRY_ON + CONNECTION_RETRY_ON for c in conditions):
        raise ValueError(raw)
    return conditions


def _service_names(raw: str) -> tuple[str, ...]:
    names = tuple(sorted({part.strip() for part in raw.split(",") if part.strip()}))
    if not all(_SERVICE_NAME.match(name) for name in names):
        raise ValueError(raw)
    return names


def _sni(raw: str) -> str:
    lowered = raw.lower()
    if not _SNI.match(lowered) or len(lowered) > 253:
        raise ValueError(raw)
    return lowered


def _grpc_service(raw: str) -> str:
    if not _GRPC_SERVICE.match(raw):
        raise ValueError(raw)
    return raw


def _enum(kind: type[Any]) -> Callable[[str], Any]:
    return lambda raw: kind(raw.lower())


def _timeout_or_off(raw: str) -> int | None:
    if raw.lower() == "off":
        return None
    if raw in ("0", "0s", "unlimited"):
        return 0
    return _duration()(raw)


# -- the schema ----------------------------------------------------------------------------------

_DURATION_TEXT = "a duration such as 250ms, 5s, 2m or 1h"


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label we read: its name under the prefix, what it expects, its default and its parser."""

    name: str
    expected: str
    default: str | None
    parse: Callable[[str], Any] = str


LABELS: tuple[LabelSpec, ...] = (
    # identity and routing
    LabelSpec("service", "a service name: lowercase letters, digits and '-', 1-63 characters", None, _service_name),
    LabelSpec("port", "an integer 1-65535 that is a containerPort of this container's portMappings", None, _port),
    LabelSpec("protocol", "one of grpc, http2, http1", "grpc", _protocol),
    LabelSpec("route.hosts", "a comma-separated list of host names without a port, '*' or '*.domain' wildcards", "*", _hosts),
    LabelSpec("route.prefix", "a path prefix starting with '/', e.g. /routeguide.RouteGuide/", "/", _path_prefix),
    LabelSpec("route.method", "an exact gRPC method path /package.Service/Method, e.g. /routeguide.RouteGuide/GetFeature", None, _grpc_method),
    LabelSpec("route.headers", "a comma-separated list of header matches 'name=value' (exact) or 'name' (present), lowercase names, no commas in values", None, _headers),
    LabelSpec("route.priority", "an integer 0-1000 (higher matches first)", "0", _integer(0, 1000)),
    LabelSpec("route.enabled", "true or false", "true", _boolean),
    LabelSpec("route.weights", "a comma-separated list of service:weight with integer weights 0-10000, not all 0, e.g. orders:90,orders-next:10", None, _weights),
    LabelSpec("route.newest-revision-weight", "an integer 0-100: the percent of calls for the newest task-definition revision", None, _integer(0, 100)),
    LabelSpec("upstreams", "a comma-separated list of service names (lowercase letters, digits and '-')", "", _service_names),
    # balancing
    LabelSpec("lb.policy", "one of round_robin, least_request, random, ring_hash, maglev", "round_robin", _enum(LbPolicy)),
    LabelSpec("lb.hash-header", "a lowercase header name, used with lb.policy ring_hash or maglev", None, _header_name),
    LabelSpec("lb.slow-start", f"{_DURATION_TEXT}, used with lb.policy round_robin or least_request", None, _duration()),
    LabelSpec("lb.locality", "one of none, zone-aware, equal-zones", "none", _enum(LocalityMode)),
    # active health check
    LabelSpec("health.check", "one of none, grpc, http", "none", _enum(HealthCheckKind)),
    LabelSpec("health.grpc-service", "a gRPC service name such as routeguide.RouteGuide ('' = the whole server), with health.check=grpc", "", _grpc_service),
    LabelSpec("health.path", "a path starting with '/', with health.check=http", "/healthz", _path_prefix),
    LabelSpec("health.interval", _DURATION_TEXT, "5s", _duration(100)),
    LabelSpec("health.timeout", f"{_DURATION_TEXT}, shorter than health.interval", "1s", _duration(10)),
    LabelSpec("health.healthy-threshold", "an integer 1-100", "2", _integer(1, 100)),
    LabelSpec("health.unhealthy-threshold", "an integer 1-100", "2", _integer(1, 100)),
    # outlier detection
    LabelSpec("outlier.consecutive-5xx", "an integer 1-1000", None, _integer(1, 1000)),
    LabelSpec("outlier.consecutive-gateway-errors", "an integer 1-1000", None, _integer(1, 1000)),
    LabelSpec("outlier.consecutive-local-origin-failures", "an integer 1-1000", None, _integer(1, 1000)),
    LabelSpec("outlier.interval", _DURATION_TEXT, "5s", _duration(100)),
    LabelSpec("outlier.ejection-time", _DURATION_TEXT, "30s", _duration(100)),
    LabelSpec("outlier.max-ejection-percent", "an integer 1-100", "50", _integer(1, 100)),
    # circuit breakers
    LabelSpec("circuit-breaker.max-connections", "an integer 1-1000000", "1024", _integer(1, 1_000_000)),
    LabelSpec("circuit-breaker.max-pending-requests", "an integer 1-1000000", "1024", _integer(1, 1_000_000)),
    LabelSpec("circuit-breaker.max-requests", "an integer 1-1000000", "1024", _integer(1, 1_000_000)),
    LabelSpec("circuit-breaker.max-retries", "an integer 0-1000000", "32", _integer(0, 1_000_000)),
    # retries and timeouts
    LabelSpec("retry.on", "a comma-separated list of " + ", ".join(GRPC_RETRY_ON + CONNECTION_RETRY_ON), ",".join(RetryPolicy().retry_on), _retry_on),
    LabelSpec("retry.attempts", "an integer 0-10 (retries after the first try)", "2", _integer(0, 10)),
    LabelSpec("retry.per-try-timeout", _DURATION_TEXT, None, _duration()),
    LabelSpec("retry.budget", "a percent 0-100 (exclusive of 0) of active calls that may be retries, e.g. 20", None, _percent),
    LabelSpec("timeout.route", f"{_DURATION_TEXT}, or 0 for none", "0", lambda raw: 0 if raw in ("0", "0s") else _duration()(raw)),
    LabelSpec("timeout.idle", _DURATION_TEXT, None, _duration()),
    LabelSpec("timeout.max-stream-duration", _DURATION_TEXT, None, _duration()),
    LabelSpec("timeout.grpc-max", f"{_DURATION_TEXT}, 0 to honour any grpc-timeout, or off to ignore grpc-timeout", "0", _timeout_or_off),
    # rate limit
    LabelSpec("ratelimit.average", "an integer 1-1000000: calls per ratelimit.period", None, _integer(1, 1_000_000)),
    LabelSpec("ratelimit.period", _DURATION_TEXT + " (at least 50ms)", "1s", _duration(50)),
    LabelSpec("ratelimit.burst", "an integer 1-1000000, at least ratelimit.average", None, _integer(1, 1_000_000)),
    # upstream TLS
    LabelSpec("scheme", "one of plain, tls", "plain", lambda raw: {"plain": False, "tls": True}[raw.lower()]),
    LabelSpec("tls.sni", "a host name (the TLS server name sent to the task), with scheme=tls", None, _sni),
)
_SPECS = {spec.name: spec for spec in LABELS}
_KNOWN = set(_SPECS)


def declaration_prefixes(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The label prefixes of every service a container declares: `xds.`, then `xds.1.`..`xds.9.`."""
    found = [prefix] if prefix + "service" in labels else []
    found += [f"{prefix}{n}." for n in range(1, MAX_INDEX + 1) if f"{prefix}{n}.service" in labels]
    return found


def unknown_labels(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Labels under our prefix that we do not know (typo protection)."""
    unknown = []
    for key in labels:
        if not key.startswith(prefix):
            continue
        name = key[len(prefix) :]
        indexed = _INDEXED.match(name)
        if indexed and f"{prefix}{indexed.group(1)}.service" in labels:
            name = indexed.group(2)
        if name not in _KNOWN:
            unknown.append(key)
    return sorted(unknown)


def parse_container(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> ServiceDeclaration | None:
    """The (unindexed) service a container declares, None when it does not opt in, LabelError when malformed."""
    if prefix + "service" not in container.labels:
        return None
    return parse_declaration(container, prefix)


def parse_declarations(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> list[ServiceDeclaration | LabelError]:
    """Every service a container declares (unindexed and indexed), each parsed or its LabelError."""
    results: list[ServiceDeclaration | LabelError] = []
    for declaration_prefix in declaration_prefixes(container.labels, prefix):
        try:
            results.append(parse_declaration(container, declaration_prefix))
        except LabelError as error:
            results.append(error)
    return results


class _Reader:
    """Reads labels under one declaration prefix; every error names the label, value and expectation."""

    def __init__(self, labels: Mapping[str, str], prefix: str) -> None:
        self.labels = labels
        self.prefix = prefix

    def raw(self, name: str) -> str | None:
        raw = self.labels.get(self.prefix + name)
        return None if raw is None else raw.strip()

    def is_set(self, name: str) -> bool:
        return self.prefix + name in self.labels

    def get(self, name: str) -> Any:
        spec = _SPECS[name]
        raw = self.raw(name)
        if raw is None:
            if spec.default is None:
                return None
            raw = spec.default
        try:
            return spec.parse(raw)
        except (ValueError, TypeError, KeyError):
            raise self.error(name, f"expected {spec.expected}") from None

    def error(self, name: str, message: str) -> LabelError:
        raw = self.raw(name)
        shown = f"{self.prefix}{name}={raw!r}" if raw is not None else f"{self.prefix}{name}"
        return LabelError(f"label {shown}: {message}", label=self.prefix + name, value=raw)


def parse_declaration(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> ServiceDeclaration:
    """The service declared by the labels under `prefix` (which must include `service`), or LabelError."""
    read = _Reader(container.labels, prefix)
    name = str(read.get("service"))
    ports = [mapping.container_port for mapping in container.port_mappings]
    if read.is_set("port"):
        port = int(read.get("port"))
        if port not in ports:
            raise read.error(
                "port", f"container {container.name!r} has no portMappings entry with containerPort {port} (it maps {_list(ports)})"
            )
    elif len(ports) == 1:
        port = ports[0]
    else:
        raise LabelError(
            f"label {prefix}port is missing: container {container.name!r} maps {_list(ports)}; "
            f"set {prefix}port to the containerPort that serves {name!r}",
            label=prefix + "port",
        )
    protocol = Protocol(read.get("protocol"))
    route = _route(read)
    policy = TrafficPolicy(
        load_balancing=_load_balancing(read),
        health_check=_health_check(read, protocol),
        outlier_detection=OutlierDetection(
            consecutive_5xx=read.get("outlier.consecutive-5xx"),
            consecutive_gateway_errors=read.get("outlier.consecutive-gateway-errors"),
            consecutive_local_origin_failures=read.get("outlier.consecutive-local-origin-failures"),
            interval_ms=read.get("outlier.interval"),
            base_ejection_ms=read.get("outlier.ejection-time"),
            max_ejection_percent=read.get("outlier.max-ejection-percent"),
        ),
        circuit_breakers=CircuitBreakers(
            max_connections=read.get("circuit-breaker.max-connections"),
            max_pending_requests=read.get("circuit-breaker.max-pending-requests"),
            max_requests=read.get("circuit-breaker.max-requests"),
            max_retries=read.get("circuit-breaker.max-retries"),
        ),
        retry=RetryPolicy(
            retry_on=read.get("retry.on"),
            num_retries=read.get("retry.attempts"),
            per_try_timeout_ms=read.get("retry.per-try-timeout") or 0,
            budget_percent=read.get("retry.budget"),
        ),
        timeouts=_timeouts(read, protocol),
        rate_limit=_rate_limit(read),
        tls=_tls(read),
    )
    return ServiceDeclaration(
        name=name,
        container=container.name,
        container_port=port,
        protocol=protocol,
        route=route,
        policy=policy,
        split=read.get("route.weights"),
        newest_revision_weight=read.get("route.newest-revision-weight"),
        upstreams=read.get("upstreams"),
    )


def _route(read: _Reader) -> RouteMatch:
    method = read.get("route.method")
    if method is not None and read.is_set("route.prefix"):
        raise read.error("route.method", f"set either {read.prefix}route.method or {read.prefix}route.prefix, not both")
    return RouteMatch(
        hosts=read.get("route.hosts"),
        path_prefix=read.get("route.prefix"),
        method=method,
        headers=read.get("route.headers") or (),
        priority=read.get("route.priority"),
        enabled=read.get("route.enabled"),
    )


def _load_balancing(read: _Reader) -> LoadBalancing:
    policy = LbPolicy(read.get("lb.policy"))
    hash_header = read.get("lb.hash-header")
    if policy.is_hashing and hash_header is None:
        raise read.error("lb.policy", f"{policy.value} hashes a request header: set {read.prefix}lb.hash-header too")
    if hash_header is not None and not policy.is_hashing:
        raise read.error("lb.hash-header", f"expected with {read.prefix}lb.policy ring_hash or maglev (it is {policy.value})")
    slow_start = read.get("lb.slow-start")
    if slow_start is not None and policy not in (LbPolicy.ROUND_ROBIN, LbPolicy.LEAST_REQUEST):
        raise read.error("lb.slow-start", f"expected with {read.prefix}lb.policy round_robin or least_request (it is {policy.value})")
    locality = LocalityMode(read.get("lb.locality"))
    if locality is not LocalityMode.NONE and policy.is_hashing:
        raise read.error("lb.locality", f"expected none with {read.prefix}lb.policy {policy.value} (Envoy hashes over all zones)")
    return LoadBalancing(
        policy=policy, hash_header=hash_header, slow_start_ms=slow_start or 0, locality=locality
    )


def _health_check(read: _Reader, protocol: Protocol) -> HealthCheck:
    kind = HealthCheckKind(read.get("health.check"))
    if kind is HealthCheckKind.GRPC and not protocol.is_http2:
        raise read.error("health.check", f"expected http or none: the gRPC health protocol needs {read.prefix}protocol grpc or http2")
    if read.is_set("health.grpc-service") and kind is not HealthCheckKind.GRPC:
        raise read.error("health.grpc-service", f"expected with {read.prefix}health.check=grpc")
    if read.is_set("health.path") and kind is not HealthCheckKind.HTTP:
        raise read.error("health.path", f"expected with {read.prefix}health.check=http")
    check = HealthCheck(
        kind=kind,
        grpc_service=read.get("health.grpc-service"),
        path=read.get("health.path"),
        interval_ms=read.get("health.interval"),
        timeout_ms=read.get("health.timeout"),
        healthy_threshold=read.get("health.healthy-threshold"),
        unhealthy_threshold=read.get("health.unhealthy-threshold"),
    )
    if check.timeout_ms >= check.interval_ms:
        raise read.error("health.timeout", f"expected a duration shorter than {read.prefix}health.interval ({check.interval_ms}ms)")
    return check


def _timeouts(read: _Reader, protocol: Protocol) -> Timeouts:
    grpc_max = read.get("timeout.grpc-max")
    if not read.is_set("timeout.grpc-max") and protocol is not Protocol.GRPC:
        grpc_max = None  # only gRPC clients send grpc-timeout
    return Timeouts(
        route_ms=read.get("timeout.route"),
        idle_ms=read.get("timeout.idle"),
        max_stream_duration_ms=read.get("timeout.max-stream-duration"),
        grpc_timeout_header_max_ms=grpc_max,
    )


def _rate_limit(read: _Reader) -> RateLimit | None:
    average = read.get("ratelimit.average")
    burst = read.get("ratelimit.burst")
    if average is None:
        for name in ("ratelimit.burst", "ratelimit.period"):
            if read.is_set(name):
                raise read.error(name, f"expected together with {read.prefix}ratelimit.average")
        return None
    if burst is not None and burst < average:
        raise read.error("ratelimit.burst", f"expected at least {read.prefix}ratelimit.average ({average})")
    return RateLimit(average=average, period_ms=read.get("ratelimit.period"), burst=burst or 0)


def _tls(read: _Reader) -> UpstreamTls | None:
    tls = read.get("scheme")
    sni = read.get("tls.sni")
    if sni is not None and not tls:
        raise read.error("tls.sni", f"expected with {read.prefix}scheme=tls")
    return UpstreamTls(sni=sni or "") if tls else None


def _list(ports: list[int]) -> str:
    return ", ".join(str(port) for port in ports) if ports else "no ports"
