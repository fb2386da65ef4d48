"""The typed intermediate representation between ECS and Envoy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Protocol(StrEnum):
    """What the task's port speaks. gRPC and HTTP/2 use HTTP/2 upstream; HTTP/1.1 does not; TCP is
    proxied as bytes, balanced per connection (docs/labels.md, "TCP services")."""

    GRPC = "grpc"
    HTTP2 = "http2"
    HTTP1 = "http1"
    TCP = "tcp"

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.GRPC, Protocol.HTTP2)

    @property
    def is_http(self) -> bool:
        return self is not Protocol.TCP


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


class MatchKind(StrEnum):
    """How a header or query parameter value is compared (Envoy's StringMatcher; regex is RE2, whole value)."""

    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    CONTAINS = "contains"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A request header (or gRPC metadata entry) that must be present (value None) or whose value must
    match `value` by `kind`. `invert` negates it: with no value, the header must be absent; with a
    value, it must be present and not match (Envoy's invert_match)."""

    name: str
    value: str | None = None
    kind: MatchKind = MatchKind.EXACT
    invert: bool = False

    @property
    def text(self) -> str:
        """The match as the label `xds.route.header.<name>` writes it."""
        if self.value is None:
            return "absent" if self.invert else "present"
        return f"{'!' if self.invert else ''}{self.kind.value}:{self.value}"


@dataclass(frozen=True, slots=True)
class QueryMatch:
    """A query parameter that must be present (value None) or whose value must match `value` by `kind`."""

    name: str
    value: str | None = None
    kind: MatchKind = MatchKind.EXACT

    @property
    def text(self) -> str:
        return "present" if self.value is None else f"{self.kind.value}:{self.value}"


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Which requests reach a service at the edge.

    `method` (an exact gRPC path `/pkg.Service/Method`) replaces the path prefix when set. Higher
    `priority` routes are tried first; `enabled=False` gives the service a cluster but no route.
    A TCP service has no HTTP match: `port` is where proxies listen for its connections, and its
    hosts (when not `*`) are the TLS SNI names it takes there.
    """

    hosts: tuple[str, ...] = ("*",)
    path_prefix: str = "/"
    method: str | None = None
    headers: tuple[HeaderMatch, ...] = ()
    priority: int = 0
    enabled: bool = True
    query: tuple[QueryMatch, ...] = ()
    port: int | None = None

    @property
    def path_key(self) -> str:
        """What the path part matches, for conflict detection and messages."""
        return f"method={self.method}" if self.method else f"prefix={self.path_prefix}"

    @property
    def server_names(self) -> tuple[str, ...]:
        """A TCP service's TLS SNI names on its port (its hosts); () for the port's catch-all (`*`,
        the default): the connections with no or another SNI name."""
        return () if self.hosts == ("*",) else self.hosts


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
class CookieHash:
    """Stickiness by cookie: calls carrying the same cookie value go to the same task. Envoy sets the
    cookie (path `/`) on a call that has none when `ttl_ms` is not None; 0 makes it a session cookie."""

    name: str
    ttl_ms: int | None = 0


@dataclass(frozen=True, slots=True)
class LoadBalancing:
    policy: LbPolicy = LbPolicy.ROUND_ROBIN
    hash_header: str | None = None  # ring_hash / maglev: the request header hashed for stickiness
    hash_cookie: CookieHash | None = None  # ring_hash / maglev: the cookie hashed for stickiness (not with hash_header)
    slow_start_ms: int = 0  # round_robin / least_request: ramp-up window of a new task; 0 = off
    locality: LocalityMode = LocalityMode.NONE
    # zone-aware: fewest healthy tasks for which Envoy keeps calls in the proxy's zone (its min_cluster_size);
    # None leaves Envoy's default of 6
    zone_min_tasks: int | None = None


class HealthCheckKind(StrEnum):
    NONE = "none"
    GRPC = "grpc"
    HTTP = "http"
    TCP = "tcp"  # connect only


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
    # Failure percentage: the one trigger proxyless gRPC clients apply too (gRFC A50).
    failure_percent: int | None = None
    failure_min_requests: int = 50
    failure_min_tasks: int = 5

    @property
    def enabled(self) -> bool:
        return any(
            n is not None
            for n in (
                self.consecutive_5xx, self.consecutive_gateway_errors, self.consecutive_local_origin_failures, self.failure_percent,
            )
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
class Rewrite:
    """What the route changes in a call before it reaches the task: the matched path prefix (or the
    whole path of a method route), and the Host/:authority (a literal, or the task's endpoint hostname)."""

    prefix: str | None = None
    host: str | None = None
    host_to_upstream: bool = False


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    """Headers set on (replacing any value) or removed from requests and responses; values are literal."""

    request_add: tuple[tuple[str, str], ...] = ()
    request_remove: tuple[str, ...] = ()
    response_add: tuple[tuple[str, str], ...] = ()
    response_remove: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.request_add or self.request_remove or self.response_add or self.response_remove)


@dataclass(frozen=True, slots=True)
class Cors:
    """Cross-origin calls from browsers: Envoy answers preflights and adds the CORS response headers.
    Origins are exact (`https://app.example.com`), `*`, or `https://*.example.com` (any subdomain)."""

    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ("GET", "POST", "OPTIONS")
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_s: int | None = None
    allow_credentials: bool = False


@dataclass(frozen=True, slots=True)
class Mirror:
    """A copy of `percent` of the route's calls goes to `service` too; its replies are dropped."""

    service: str
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class Fault:
    """Injected faults for testing: a fixed delay and/or an abort, each for a percent of the calls, and
    only for calls matching `headers` when set."""

    delay_ms: int | None = None
    delay_percent: float = 100.0
    abort_grpc_status: int | None = None
    abort_http_status: int | None = None
    abort_percent: float = 100.0
    headers: tuple[HeaderMatch, ...] = ()

    @property
    def aborts(self) -> bool:
        return self.abort_grpc_status is not None or self.abort_http_status is not None


@dataclass(frozen=True, slots=True)
class JwtAuth:
    """Calls on the service's edge route need a JWT from `issuer` (for one of `audiences`, when set),
    checked with a JWKS fetched from `jwks_uri` (through the cluster of `jwks_service`, or one the
    control plane builds for the URL's host) or given inline (`jwks`, canonical JSON). Claims are
    copied to request headers (`claim_headers`: claim, header); `forward` keeps the token on the call."""

    issuer: str
    audiences: tuple[str, ...] = ()
    jwks_uri: str | None = None
    jwks_service: str | None = None
    jwks: str | None = None
    claim_headers: tuple[tuple[str, str], ...] = ()
    forward: bool = False


@dataclass(frozen=True, slots=True)
class ResourcePatches:
    """JSON merge patches (RFC 7386, canonical JSON text) for the service's Cluster and Route, applied to
    their protobuf JSON form (the escape hatch, docs/labels.md)."""

    cluster: str | None = None
    route: str | None = None


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
    # What the route does to the calls besides choosing the service (docs/labels.md, "Rewrites" and on).
    rewrite: Rewrite = Rewrite()
    header_edits: HeaderEdits = HeaderEdits()
    grpc_web: bool = False
    cors: Cors | None = None
    mirror: Mirror | None = None
    fault: Fault | None = None
    jwt: JwtAuth | None = None  # edge only: who may call the service's route
    patches: ResourcePatches = ResourcePatches()


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
    ROUTE_CONFLICT = "route_conflict"  # a host and match (or a TCP port) an established service already serves
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
    by_name: Mapping[str, Service] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived, never given: which routes each host gets is a pure function of the services.
        from controlplane.model.routing import virtual_hosts

        object.__setattr__(self, "virtual_hosts", virtual_hosts(self.services))
        object.__setattr__(self, "by_name", MappingProxyType({s.name: s for s in self.services}))

    @classmethod
    def with_routes_of(cls, previous: Mesh, services: tuple[Service, ...], replaced: Mapping[str, Service], problems: tuple[ServiceProblem, ...]) -> Mesh:
        """A mesh whose services route exactly as `previous`'s do (`replaced` differ in their
        endpoints at most): the virtual hosts and the index are taken over, not derived again."""
        mesh = object.__new__(cls)
        object.__setattr__(mesh, "services", services)
        object.__setattr__(mesh, "problems", problems)
        object.__setattr__(mesh, "virtual_hosts", previous.virtual_hosts)
        if replaced:
            # Always a MappingProxyType: its copy() copies the dict at C speed (dict() would not).
            by_name = previous.by_name.copy()  # type: ignore[attr-defined]
            by_name.update(replaced)
            object.__setattr__(mesh, "by_name", MappingProxyType(by_name))
        else:
            object.__setattr__(mesh, "by_name", previous.by_name)
        return mesh

    def service(self, name: str) -> Service | None:
        return self.by_name.get(name)
