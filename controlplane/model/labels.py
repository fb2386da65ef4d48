"""Docker labels on a container definition -> service declarations and problems. Pure and total.

Every label value either parses or becomes a LabelProblem that names the label, shows the value
(shortened, escaped) and says what is accepted, bounds included; no exception escapes for any
string. A declaration with an error is refused as a whole; warnings leave it in use.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.discovery.state import ContainerDefinition
from controlplane.errors import LabelError
from controlplane.model.grammar import Grammar, is_service_name, milliseconds_text
from controlplane.model import jwt_labels, route_labels
from controlplane.model.mesh import (
    CircuitBreakers,
    CookieHash,
    HealthCheck,
    HealthCheckKind,
    LbPolicy,
    LoadBalancing,
    LocalityMode,
    OutlierDetection,
    ProblemKind,
    Protocol,
    RateLimit,
    RetryPolicy,
    RouteMatch,
    Split,
    Timeouts,
    TrafficPolicy,
    UpstreamTls,
)
from controlplane.model.no_effect import no_effect_problems
from controlplane.model.tcp_labels import check_protocol_labels
from controlplane.model.problems import LabelProblem, escaped, shown
from controlplane.model.schema import (
    CONNECTION_RETRY_ON,
    DEFAULT_PREFIX,
    FAMILIES,
    GRPC_RETRY_ON,
    LABELS,
    MAX_INDEX,
    MAX_VALUE_CHARS,
    SPECS,
    LabelFamily,
    LabelSpec,
    declaration_prefixes,
)
from controlplane.model.unknown_labels import unknown_label_problems, unknown_labels

__all__ = [
    "CONNECTION_RETRY_ON", "DEFAULT_PREFIX", "GRPC_RETRY_ON", "LABELS", "MAX_INDEX", "ContainerLabels", "ServiceDeclaration",
    "declaration_prefixes", "parse_container", "parse_container_labels", "parse_declarations", "unknown_labels",
]


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
    # Where the declaration's labels are (`xds.` or `xds.2.`) and which of them the user set: problems
    # found later (conflicts, limits) name a label the user actually wrote.
    label_prefix: str = field(default=DEFAULT_PREFIX, compare=False)
    labels_set: frozenset[str] = field(default=frozenset(), compare=False)

    def settings(self) -> tuple[object, ...]:
        """Everything but the container name: what revisions of one service may disagree on."""
        return (
            self.protocol, self.route, self.container_port, self.policy, self.split,
            self.newest_revision_weight, self.upstreams,
        )

    def label(self, *candidates: str) -> str:
        """The first of `candidates` (names under the prefix) the user set, else the service label."""
        for name in candidates:
            if name in self.labels_set:
                return self.label_prefix + name
        return self.label_prefix + "service"


@dataclass(frozen=True, slots=True)
class ContainerLabels:
    """Everything one container's labels declare, and what is wrong with them."""

    declarations: tuple[ServiceDeclaration, ...]
    problems: tuple[LabelProblem, ...]


class _Reader:
    """Reads the labels under one declaration prefix, recording a problem per bad label."""

    def __init__(self, labels: Mapping[str, str], prefix: str) -> None:
        self.labels = labels
        self.prefix = prefix
        self.problems: list[LabelProblem] = []
        self.failed: set[str] = set()
        service = labels.get(prefix + "service", "").strip()
        self.service = service if is_service_name(service) else None

    def is_set(self, name: str) -> bool:
        return self.prefix + name in self.labels

    def labels_set(self) -> frozenset[str]:
        fixed = {spec.name for spec in LABELS if self.is_set(spec.name)}
        return frozenset(fixed | {name for family in FAMILIES for name in self.family_names(family)})

    def family_names(self, family: LabelFamily) -> list[str]:
        """The names (under the prefix) of the labels of `family` the user set, sorted."""
        start = self.prefix + family.prefix
        return sorted(key[len(self.prefix):] for key in self.labels if key.startswith(start) and len(key) > len(start))

    def family(self, family: LabelFamily) -> dict[str, Any]:
        """Key -> value of every label of `family` (`route.header.<key>`); malformed ones become problems."""
        found: dict[str, Any] = {}
        names = self.family_names(family)
        for count, name in enumerate(names, start=1):
            if count > family.max_count:
                self.error(name, f"at most {family.max_count} labels {self.prefix}{family.prefix}* are accepted ({len(names)} are set)")
                break
            raw_key = name[len(family.prefix):]
            try:
                key = family.key.parse(raw_key)
            except ValueError:
                self.error(name, f"{shown(raw_key)} after {self.prefix}{family.prefix} is not accepted: expected {family.key.expected}")
                continue
            if key in found:
                self.error(name, f"another {self.prefix}{family.prefix}* label names {shown(key)} too (names are case-insensitive)", ProblemKind.CONFLICTING_LABELS)
                continue
            value = self.get(name, family.grammar)
            if value is not None:
                found[key] = value
        return found

    def get(self, name: str, family_grammar: Grammar[Any] | None = None) -> Any:
        """The label's value (its default when unset; None when it has none or is malformed).
        Labels of a family (`route.header.<key>`) are read with their family's grammar."""
        spec = SPECS[name] if family_grammar is None else LabelSpec(name, family_grammar, None)
        raw = self.labels.get(self.prefix + name)
        if raw is None:
            return default_value(name)
        refusal = _refusal(raw)
        if refusal is not None:
            self.error(name, refusal)
            return None
        try:
            return spec.grammar.parse(raw.strip())
        except (ValueError, KeyError, TypeError, OverflowError) as reason:
            # The grammars raise ValueError only; the others are a belt for a bug of ours, which
            # must still end as a problem on this label rather than stop discovery.
            detail = str(reason) if isinstance(reason, ValueError) else ""
            self.error(name, f"expected {spec.expected}" + (f" ({detail})" if detail else ""))
            return None

    def error(self, name: str, message: str, kind: ProblemKind = ProblemKind.INVALID_VALUE) -> None:
        """A problem with label `name`, which the user set."""
        key = self.prefix + name
        raw = self.labels.get(key)
        head = f"label {key}={shown(raw)}" if raw is not None else f"label {key}"
        self.failed.add(name)
        self.problems.append(
            LabelProblem(
                label=key,
                message=f"{head}: {message}",
                kind=kind,
                value=None if raw is None else escaped(raw),
                service=self.service,
            )
        )

    def parsed(self, *names: str) -> bool:
        """True when none of `names` is malformed (cross-label rules need real values)."""
        return not self.failed.intersection(names)


@functools.cache  # one entry per label we read; the values are immutable
def default_value(name: str) -> Any:
    """The parsed default of a label, None when it has none."""
    spec = SPECS[name]
    return None if spec.default is None else spec.grammar.parse(spec.default)


def _refusal(raw: str) -> str | None:
    """Why a value is refused before its grammar sees it: too long, or not printable ASCII."""
    if len(raw) > MAX_VALUE_CHARS:
        return f"the value is {len(raw)} characters long; at most {MAX_VALUE_CHARS} are accepted"
    value = raw.strip()
    for position, char in enumerate(value, start=1):
        if not " " <= char <= "~":
            return f"expected printable ASCII text: character {position} is {shown(char)}"
    return None


def parse_container_labels(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> ContainerLabels:
    """Every service a container declares (unindexed and indexed) and every problem of its labels."""
    declarations: list[ServiceDeclaration] = []
    problems: list[LabelProblem] = []
    for declaration_prefix in declaration_prefixes(container.labels, prefix):
        read = _Reader(container.labels, declaration_prefix)
        declaration = _declaration(read, container)
        problems.extend(read.problems)
        if declaration is not None:
            declarations.append(declaration)
            problems.extend(no_effect_problems(declaration, container.labels))
    declarations = _without_duplicates(declarations, container, problems)
    problems.extend(unknown_label_problems(container.labels, prefix))
    return ContainerLabels(tuple(declarations), tuple(problems))


def _without_duplicates(
    declarations: list[ServiceDeclaration], container: ContainerDefinition, problems: list[LabelProblem]
) -> list[ServiceDeclaration]:
    """One container declaring one service twice (two ports, or the same port twice) is an error:
    both declarations are refused, since we cannot tell which port the user meant."""
    by_name: dict[str, list[ServiceDeclaration]] = {}
    for declaration in declarations:
        by_name.setdefault(declaration.name, []).append(declaration)
    kept = []
    for declaration in declarations:
        same = by_name[declaration.name]
        if len(same) == 1:
            kept.append(declaration)
            continue
        others = ", ".join(f"{d.label_prefix}service (port {d.container_port})" for d in same if d is not declaration)
        problems.append(
            LabelProblem(
                label=declaration.label_prefix + "service",
                message=(
                    f"label {declaration.label_prefix}service={shown(declaration.name)}: container {shown(container.name)} "
                    f"also declares service {shown(declaration.name)} with {others}; a service has one port per container: "
                    "remove one declaration or give it another service name"
                ),
                kind=ProblemKind.DUPLICATE_DECLARATION,
                value=declaration.name,
                service=declaration.name,
            )
        )
    return kept


def parse_declarations(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> list[ServiceDeclaration | LabelError]:
    """Every service a container declares, each parsed or its first error (as a LabelError)."""
    results: list[ServiceDeclaration | LabelError] = []
    for declaration_prefix in declaration_prefixes(container.labels, prefix):
        read = _Reader(container.labels, declaration_prefix)
        declaration = _declaration(read, container)
        results.append(declaration if declaration is not None else _as_error(read.problems[0]))
    return results


def parse_container(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> ServiceDeclaration | None:
    """The (unindexed) service a container declares, None when it does not opt in, LabelError when malformed."""
    if prefix + "service" not in container.labels:
        return None
    read = _Reader(container.labels, prefix)
    declaration = _declaration(read, container)
    if declaration is None:
        raise _as_error(read.problems[0])
    return declaration


def _as_error(problem: LabelProblem) -> LabelError:
    return LabelError(problem.message, label=problem.label, value=problem.value, kind=problem.kind.value)


def _declaration(read: _Reader, container: ContainerDefinition) -> ServiceDeclaration | None:
    """The service declared under the reader's prefix, or None when any of its labels is wrong."""
    name = read.get("service")
    port = _port(read, container, name)
    protocol = read.get("protocol") or Protocol.GRPC
    route = _route(read)
    grpc_web = route_labels.grpc_web(read, protocol)
    policy = TrafficPolicy(
        load_balancing=_load_balancing(read),
        health_check=_health_check(read, protocol),
        outlier_detection=OutlierDetection(
            consecutive_5xx=read.get("outlier.consecutive-5xx"),
            consecutive_gateway_errors=read.get("outlier.consecutive-gateway-errors"),
            consecutive_local_origin_failures=read.get("outlier.consecutive-local-origin-failures"),
            failure_percent=read.get("outlier.failure-percent"),
            failure_min_requests=read.get("outlier.failure-min-requests") or 0,
            failure_min_tasks=read.get("outlier.failure-min-tasks") or 0,
            interval_ms=read.get("outlier.interval") or 0,
            base_ejection_ms=read.get("outlier.ejection-time") or 0,
            max_ejection_percent=read.get("outlier.max-ejection-percent") or 0,
        ),
        circuit_breakers=CircuitBreakers(
            max_connections=read.get("circuit-breaker.max-connections") or 0,
            max_pending_requests=read.get("circuit-breaker.max-pending-requests") or 0,
            max_requests=read.get("circuit-breaker.max-requests") or 0,
            max_retries=_or(read.get("circuit-breaker.max-retries"), 0),
        ),
        retry=RetryPolicy(
            retry_on=read.get("retry.on") or (),
            num_retries=_or(read.get("retry.attempts"), 0),
            per_try_timeout_ms=read.get("retry.per-try-timeout") or 0,
            budget_percent=read.get("retry.budget"),
        ),
        timeouts=_timeouts(read, protocol),
        rate_limit=_rate_limit(read),
        tls=_tls(read),
        rewrite=route_labels.rewrite(read),
        header_edits=route_labels.header_edits(read),
        grpc_web=grpc_web,
        cors=route_labels.cors(read, grpc_web),
        mirror=route_labels.mirror(read),
        fault=route_labels.fault(read, protocol),
        jwt=jwt_labels.jwt(read),
        patches=jwt_labels.patches(read),
    )
    split = read.get("route.weights")
    newest_revision_weight = read.get("route.newest-revision-weight")
    upstreams = read.get("upstreams") or ()
    check_protocol_labels(read, protocol)
    if read.problems or name is None or port is None or route is None:
        return None
    return ServiceDeclaration(
        name=name,
        container=container.name,
        container_port=port,
        protocol=protocol,
        route=route,
        policy=policy,
        split=split,
        newest_revision_weight=newest_revision_weight,
        upstreams=upstreams,
        label_prefix=read.prefix,
        labels_set=read.labels_set(),
    )


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _port(read: _Reader, container: ContainerDefinition, name: str | None) -> int | None:
    ports = [mapping.container_port for mapping in container.port_mappings]
    if read.is_set("port"):
        port = read.get("port")
        if port is not None and port not in ports:
            read.error(
                "port",
                f"container {shown(container.name)} has no portMappings entry with containerPort {port} (it maps {_list(ports)})",
            )
            return None
        return port  # type: ignore[no-any-return]
    if len(ports) == 1:
        return ports[0]
    if name is not None:
        read.error(
            "service",
            f"container {shown(container.name)} maps {_list(ports)}: set {read.prefix}port to the containerPort that serves {shown(name)}",
            ProblemKind.MISSING_LABEL,
        )
    return None


def _route(read: _Reader) -> RouteMatch | None:
    method = read.get("route.method")
    if method is not None and read.is_set("route.prefix"):
        read.error("route.method", f"set either {read.prefix}route.method or {read.prefix}route.prefix, not both", ProblemKind.CONFLICTING_LABELS)
    hosts, prefix = read.get("route.hosts"), read.get("route.prefix")
    priority, enabled = read.get("route.priority"), read.get("route.enabled")
    headers = route_labels.header_matches(read, read.get("route.headers") or ())
    query = route_labels.query_matches(read)
    port = read.get("route.port")  # tcp services only (tcp_labels.py)
    if hosts is None or prefix is None or priority is None or enabled is None:
        return None
    return RouteMatch(hosts=hosts, path_prefix=prefix, method=method, headers=headers, priority=priority, enabled=enabled, query=query, port=port)


def _load_balancing(read: _Reader) -> LoadBalancing:
    policy = read.get("lb.policy") or LbPolicy.ROUND_ROBIN
    hash_header = read.get("lb.hash-header")
    cookie = _hash_cookie(read)
    slow_start = read.get("lb.slow-start")
    locality = read.get("lb.locality") or LocalityMode.NONE
    if read.parsed("lb.policy", "lb.hash-header", "lb.hash-cookie"):
        if policy.is_hashing and hash_header is None and cookie is None:
            read.error(
                "lb.policy",
                f"{policy.value} hashes a request header or cookie: set {read.prefix}lb.hash-header or {read.prefix}lb.hash-cookie too",
                ProblemKind.MISSING_LABEL,
            )
        for name, value in (("lb.hash-header", hash_header), ("lb.hash-cookie", cookie)):
            if value is not None and not policy.is_hashing:
                read.error(name, f"expected with {read.prefix}lb.policy ring_hash or maglev (it is {policy.value})", ProblemKind.CONFLICTING_LABELS)
        if hash_header is not None and cookie is not None:
            read.error(
                "lb.hash-cookie", f"set either {read.prefix}lb.hash-header or {read.prefix}lb.hash-cookie, not both", ProblemKind.CONFLICTING_LABELS
            )
    if slow_start is not None and read.parsed("lb.policy") and policy not in (LbPolicy.ROUND_ROBIN, LbPolicy.LEAST_REQUEST):
        read.error(
            "lb.slow-start", f"expected with {read.prefix}lb.policy round_robin or least_request (it is {policy.value})", ProblemKind.CONFLICTING_LABELS
        )
    if locality is not LocalityMode.NONE and read.parsed("lb.policy") and policy.is_hashing:
        read.error(
            "lb.locality", f"expected none with {read.prefix}lb.policy {policy.value} (Envoy hashes over all zones)", ProblemKind.CONFLICTING_LABELS
        )
    zone_min_tasks = read.get("lb.zone-min-tasks")
    if zone_min_tasks is not None and read.parsed("lb.locality") and locality is not LocalityMode.ZONE_AWARE:
        read.error(
            "lb.zone-min-tasks", f"expected with {read.prefix}lb.locality zone-aware (it is {locality.value})", ProblemKind.CONFLICTING_LABELS
        )
    return LoadBalancing(
        policy=policy, hash_header=hash_header, hash_cookie=cookie, slow_start_ms=slow_start or 0, locality=locality, zone_min_tasks=zone_min_tasks
    )


def _hash_cookie(read: _Reader) -> CookieHash | None:
    name, ttl = read.get("lb.hash-cookie"), read.get("lb.hash-cookie-ttl")
    if name is None:
        if read.parsed("lb.hash-cookie") and read.is_set("lb.hash-cookie-ttl"):
            read.error("lb.hash-cookie-ttl", f"expected together with {read.prefix}lb.hash-cookie", ProblemKind.MISSING_LABEL)
        return None
    return CookieHash(name=name, ttl_ms=ttl)


def _health_check(read: _Reader, protocol: Protocol) -> HealthCheck:
    kind = read.get("health.check") or HealthCheckKind.NONE
    if kind is HealthCheckKind.GRPC and read.parsed("protocol") and not protocol.is_http2:
        read.error(
            "health.check",
            f"expected http, tcp or none: the gRPC health protocol needs {read.prefix}protocol grpc or http2",
            ProblemKind.CONFLICTING_LABELS,
        )
    if read.parsed("health.check"):
        if read.is_set("health.grpc-service") and kind is not HealthCheckKind.GRPC:
            read.error("health.grpc-service", f"expected with {read.prefix}health.check=grpc", ProblemKind.CONFLICTING_LABELS)
        if read.is_set("health.path") and kind is not HealthCheckKind.HTTP:
            read.error("health.path", f"expected with {read.prefix}health.check=http", ProblemKind.CONFLICTING_LABELS)
    check = HealthCheck(
        kind=kind,
        grpc_service=_or(read.get("health.grpc-service"), ""),
        path=read.get("health.path") or "/healthz",
        interval_ms=read.get("health.interval") or 0,
        timeout_ms=read.get("health.timeout") or 0,
        healthy_threshold=read.get("health.healthy-threshold") or 0,
        unhealthy_threshold=read.get("health.unhealthy-threshold") or 0,
    )
    if check.enabled and read.parsed("health.check", "health.interval", "health.timeout") and check.timeout_ms >= check.interval_ms:
        # Blame the label the user set: the timeout when set, else the interval (the timeout is 1s by default).
        if read.is_set("health.timeout"):
            read.error(
                "health.timeout",
                f"expected a duration shorter than {read.prefix}health.interval ({milliseconds_text(check.interval_ms)})",
                ProblemKind.CONFLICTING_LABELS,
            )
        else:
            read.error(
                "health.interval",
                f"expected a duration longer than the health check timeout ({milliseconds_text(check.timeout_ms)} unless "
                f"{read.prefix}health.timeout says otherwise)",
                ProblemKind.CONFLICTING_LABELS,
            )
    return check


def _timeouts(read: _Reader, protocol: Protocol) -> Timeouts:
    grpc_max = read.get("timeout.grpc-max")
    if not read.is_set("timeout.grpc-max") and protocol is not Protocol.GRPC:
        grpc_max = None  # only gRPC clients send grpc-timeout
    return Timeouts(
        route_ms=read.get("timeout.route") or 0,
        idle_ms=read.get("timeout.idle"),
        max_stream_duration_ms=read.get("timeout.max-stream-duration"),
        grpc_timeout_header_max_ms=grpc_max,
    )


def _rate_limit(read: _Reader) -> RateLimit | None:
    average = read.get("ratelimit.average")
    burst = read.get("ratelimit.burst")
    period = read.get("ratelimit.period")
    if average is None:
        if read.parsed("ratelimit.average"):
            for name in ("ratelimit.burst", "ratelimit.period"):
                if read.is_set(name):
                    read.error(name, f"expected together with {read.prefix}ratelimit.average", ProblemKind.MISSING_LABEL)
        return None
    if burst is not None and burst < average:
        read.error("ratelimit.burst", f"expected at least {read.prefix}ratelimit.average ({average})", ProblemKind.CONFLICTING_LABELS)
    return RateLimit(average=average, period_ms=period or 1000, burst=burst or 0)


def _tls(read: _Reader) -> UpstreamTls | None:
    tls = read.get("scheme")
    sni = read.get("tls.sni")
    if sni is not None and read.parsed("scheme") and not tls:
        read.error("tls.sni", f"expected with {read.prefix}scheme=tls", ProblemKind.CONFLICTING_LABELS)
    return UpstreamTls(sni=sni or "") if tls else None


def _list(ports: list[int]) -> str:
    return ", ".join(str(port) for port in ports) if ports else "no ports"

