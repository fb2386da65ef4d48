"""The typed intermediate representation between ECS and Envoy."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Protocol(StrEnum):
    """What the task's port speaks. gRPC and HTTP/2 use HTTP/2 upstream; HTTP/1.1 does not."""

    GRPC = "grpc"
    HTTP2 = "http2"
    HTTP1 = "http1"

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.GRPC, Protocol.HTTP2)


class EndpointHealth(StrEnum):
    """What Envoy is told about an endpoint."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    task_arn: str
    cluster: str
    task_definition: str
    health: EndpointHealth
    availability_zone: str = ""

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A request header that must be present (value None) or equal `value` exactly."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Which requests reach a service at the edge.

    `method` (an exact gRPC path `/pkg.Service/Method`) replaces the path prefix when set. Higher
    `priority` routes are tried first; `enabled=False` gives the service a cluster but no route.
    """

    hosts: tuple[str, ...] = ("*",)
    path_prefix: str = "/"
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    priority: int = 0
    enabled: bool = True

    @property
    def path_key(self) -> str:
        """What the path part matches, for conflict detection and messages."""
        return f"method={self.method}" if self.method else f"prefix={self.path_prefix}"


class LbPolicy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_REQUEST = "least_request"
    RANDOM = "random"
    RING_HASH = "ring_hash"
    MAGLEV = "maglev"

    @property
    def is_hashing(self) -> bool:
        return self in (LbPolicy.RING_HASH, LbPolicy.MAGLEV)


class LocalityMode(StrEnum):
    """How availability zones weigh in: not at all, prefer the proxy's zone, or equal share per zone."""

    NONE = "none"
    ZONE_AWARE = "zone-aware"
    EQUAL_ZONES = "equal-zones"


@dataclass(frozen=True, slots=True)
class LoadBalancing:
    policy: LbPolicy = LbPolicy.ROUND_ROBIN
    hash_header: str | None = None  # ring_hash / maglev: the request header hashed for stickiness
    slow_start_ms: int = 0  # round_robin / least_request: ramp-up window of a new task; 0 = off
    locality: LocalityMode = LocalityMode.NONE


class HealthCheckKind(StrEnum):
    NONE = "none"
    GRPC = "grpc"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """An active health check by Envoy, on top of ECS's task health."""

    kind: HealthCheckKind = HealthCheckKind.NONE
    grpc_service: str = ""
    path: str = "/healthz"
    interval_ms: int = 5000
    timeout_ms: int = 1000
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2

    @property
    def enabled(self) -> bool:
        return self.kind is not HealthCheckKind.NONE


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Passive ejection of tasks that keep failing; each trigger is off unless set."""

    consecutive_5xx: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_local_origin_failures: int | None = None
    interval_ms: int = 5000
    base_ejection_ms: int = 30000
    max_ejection_percent: int = 50

    @property
    def enabled(self) -> bool:
        return any(
            n is not None
            for n in (self.consecutive_5xx, self.consecutive_gateway_errors, self.consecutive_local_origin_failures)
        )


@dataclass(frozen=True, slots=True)
class CircuitBreakers:
    """Per-proxy limits towards one service; always on."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 32


DEFAULT_RETRY_ON: tuple[str, ...] = ("connect-failure", "refused-stream", "reset-before-request")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retry_on: tuple[str, ...] = DEFAULT_RETRY_ON
    num_retries: int = 2
    per_try_timeout_ms: int = 0  # 0 = the route timeout applies to each try
    budget_percent: float | None = None  # replaces max_retries with a retry budget when set


@dataclass(frozen=True, slots=True)
class Timeouts:
    route_ms: int = 0  # 0 = none (gRPC streams may be long-lived)
    idle_ms: int | None = None  # None = Envoy's default (the connection manager's stream idle timeout)
    max_stream_duration_ms: int | None = None
    grpc_timeout_header_max_ms: int | None = None  # honour grpc-timeout up to this; 0 = no cap; None = ignore


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket per proxy: `average` calls per `period`, bursts up to `burst`."""

    average: int
    period_ms: int = 1000
    burst: int = 0

    @property
    def max_tokens(self) -> int:
        return self.burst or self.average


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """The task serves TLS; `sni` is sent as the server name when set."""

    sni: str = ""


@dataclass(frozen=True, slots=True)
class WeightedTarget:
    service: str
    weight: int


@dataclass(frozen=True, slots=True)
class Split:
    """Calls on this service's route are shared between services (or revisions) by weight."""

    targets: tuple[WeightedTarget, ...]


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """Everything the labels say about how calls reach a service's tasks."""

    load_balancing: LoadBalancing = LoadBalancing()
    health_check: HealthCheck = HealthCheck()
    outlier_detection: OutlierDetection = OutlierDetection()
    circuit_breakers: CircuitBreakers = CircuitBreakers()
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    rate_limit: RateLimit | None = None
    tls: UpstreamTls | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """One service as declared by the labels of its task definition.

    `split` sends the route's calls to other services by weight. A service split by revision
    (`newest_revision_weight`) is served by per-revision subset services named
    `<service>@<family>:<revision>` whose `subset_of` is the service; they have no route of their own.
    """

    name: str
    protocol: Protocol
    route: RouteMatch
    container_port: int
    declared_by: str  # task definition family:revision whose labels define the settings
    endpoints: tuple[Endpoint, ...]
    policy: TrafficPolicy = TrafficPolicy()
    split: Split | None = None
    newest_revision_weight: int | None = None
    upstreams: tuple[str, ...] = ()
    subset_of: str | None = None


class ProblemKind(StrEnum):
    """What kind of problem a label has: a bounded set (it labels a metric)."""

    INVALID_VALUE = "invalid_value"  # a value outside its grammar or bounds, too long, not printable ASCII
    MISSING_LABEL = "missing_label"  # a label the declaration needs is not set (xds.port with several ports)
    CONFLICTING_LABELS = "conflicting_labels"  # labels of one declaration that contradict each other
    DUPLICATE_DECLARATION = "duplicate_declaration"  # one task definition declares one service twice
    UNKNOWN_LABEL = "unknown_label"  # a label under the prefix that we do not read (typo, case)
    NO_EFFECT = "no_effect"  # a label, or combination, that changes nothing
    REVISION_MISMATCH = "revision_mismatch"  # revisions of the owning family disagree (mid-rollout)
    FAMILY_CONFLICT = "family_conflict"  # another family declares the service with different settings
    ROUTE_CONFLICT = "route_conflict"  # a host and match an established service already serves
    SHADOWED_ROUTE = "shadowed_route"  # a route that never matches: an earlier route takes all its calls
    UNKNOWN_TARGET = "unknown_target"  # weights or upstreams naming a service that nothing serves
    LIMIT_EXCEEDED = "limit_exceeded"  # more hosts, routes or bytes of configuration than allowed


@dataclass(frozen=True, slots=True)
class ServiceProblem:
    """A validation problem, as data: shown in the log, the metrics and the admin API.

    Every text that came from a label (label names, values, service names) is shortened and
    escaped: a problem is always printable and encodable, whatever the label held.
    """

    service: str | None
    task_definition: str
    container: str
    message: str
    label: str | None = None
    value: str | None = None
    severity: str = "error"  # "error": the declaration is ignored; "warning": it is used anyway
    kind: ProblemKind = ProblemKind.INVALID_VALUE


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """One host of the edge and the routes it tries, in order, as the names of their services.

    A host's own routes come first; then, as a fallback, the routes of the wildcard hosts that also
    match it (`*.example.com` before `*`). An explicit host therefore always wins over a wildcard.
    """

    host: str
    routes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Mesh:
    """Every service we serve, in name order, the edge's virtual hosts, and the problems found on the way."""

    services: tuple[Service, ...]
    problems: tuple[ServiceProblem, ...] = ()
    virtual_hosts: tuple[VirtualHost, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Derived, never given: which routes each host gets is a pure function of the services.
        from controlplane.model.routing import virtual_hosts

        object.__setattr__(self, "virtual_hosts", virtual_hosts(self.services))

    def service(self, name: str) -> Service | None:
        for service in self.services:
            if service.name == name:
                return service
        return None
