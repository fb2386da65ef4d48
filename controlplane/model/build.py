"""Cluster views -> the Mesh. Pure, total and deterministic: the same views give an equal Mesh, on
every replica, whatever order ECS answered in (docs/labels.md, "Route ownership").

1. Each task definition's labels are parsed once: declarations, and problems as data.
2. Each service name gets its owning family (families.py); other families join with identical
   settings only.
3. Services are admitted to the edge in established order (the owning family's first task start,
   then the name): a newcomer that would take an established route, or exceed the limits, is
   refused (ownership.py, limits.py).
4. Revision splits, weights and upstreams are resolved against what is served.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from itertools import chain
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controlplane.discovery.state import ClusterState, TaskDefinition
from controlplane.model.families import Claim, Ownership, Rank, resolve
from controlplane.model.host_rule import DefaultHostRule
from controlplane.model.labels import DEFAULT_PREFIX, ServiceDeclaration, parse_container_labels
from controlplane.model.implicit import with_port_name_labels
from controlplane.model.label_cache import ParsedTaskDefinition
from controlplane.model.lifecycle import HealthPolicy
from controlplane.model.limits import Charge, Limits
from controlplane.model.mesh import (
    Endpoint,
    HeaderMatch,
    MatchKind,
    Mesh,
    ProblemKind,
    RouteMatch,
    Service,
    ServiceProblem,
    Split,
    WeightedTarget,
)
from controlplane.model.ownership import EdgeRoutes, TcpPorts
from controlplane.model.routing import same_match
from controlplane.model.problems import LabelProblem, escaped, shown

# Checks what the model cannot see (it knows no protobuf): the escape hatch's patches applied to the
# service's Envoy resources. Returns (label under the prefix, what is wrong) or None; translate/patch.py
# has the one the control plane uses.
ResourceCheck = Callable[[Service], "tuple[str, str] | None"]


def build_mesh(
    states: Iterable[ClusterState],
    prefix: str = DEFAULT_PREFIX,
    limits: Limits = Limits(),
    health_policy: HealthPolicy = HealthPolicy(),
    *,
    services_from_port_names: bool = False,
    host_rule: DefaultHostRule | None = None,
    resource_check: ResourceCheck | None = None,
) -> Mesh:
    """Every service declared by the labels of live tasks, with their endpoints and problems. With a
    `host_rule`, routed services without `xds.route.hosts` get the hosts it gives instead of `*`; a
    service that fails `resource_check` is refused with its problem."""
    # The incremental builder keeps what this module derives from one view to the next; a fresh
    # one builds the whole mesh, so there is one way to build it.
    from controlplane.model.incremental import MeshBuilder

    builder = MeshBuilder(
        prefix, limits, health_policy, services_from_port_names=services_from_port_names, host_rule=host_rule, resource_check=resource_check
    )
    return builder.update(states).mesh


def parse_task_definition(task_definition: TaskDefinition, prefix: str, services_from_port_names: bool = False) -> ParsedTaskDefinition:
    """Step 1: the declarations of a task definition's labels, and their problems."""
    problems: list[ServiceProblem] = []
    declarations = _declarations(task_definition, prefix, problems, services_from_port_names)
    return ParsedTaskDefinition(declarations, tuple(problems))


def merged_endpoints(claims: Iterable[Claim]) -> tuple[Endpoint, ...]:
    """The endpoints of the claims that serve one service, by address and port. Two tasks on one
    address and port (an address reused while the old task drains) give the task ECS started last,
    then the later ARN: ECS's own fields, never the order tasks were listed or events arrived in,
    so every replica picks the same."""
    by_key: dict[tuple[str, int], tuple[tuple[float, str], Endpoint]] = {}
    for claim in claims:
        for arn, endpoint in claim.tasks.items():
            if endpoint is None:
                continue
            key = (endpoint.address, endpoint.port)
            rank = (claim.started.get(arn, float("-inf")), arn)
            other = by_key.get(key)
            if other is None or rank > other[0]:
                by_key[key] = (rank, endpoint)
    return tuple(by_key[key][1] for key in sorted(by_key))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A service name whose owner's declaration passed the checks of step 2, waiting for its turn at the edge."""

    rank: Rank
    service: Service
    declaration: ServiceDeclaration
    revisions: dict[str, int]  # task definition -> revision, of the accepted claims


@dataclass(frozen=True, slots=True)
class Admission:
    """How one candidate fared at the edge (step 3), by name only: `refusal` is None (admitted),
    ("limit", what it would exceed), ("route", host, service whose route it would take) or ("port",
    SNI name or `*`, TCP service holding it on the port); `shadowed_by`: (host, service whose route takes all its calls)."""

    refusal: tuple[str, ...] | None
    shadowed_by: tuple[tuple[str, str], ...] = ()

    def others(self) -> set[str]:
        """The services this decision names (their task definitions are in its problems' messages)."""
        found = {name for _, name in self.shadowed_by}
        if self.refusal is not None and self.refusal[0] != "limit":
            found.add(self.refusal[-1])
        return found


@dataclass(frozen=True, slots=True)
class Served:
    """The names served, by kind: what weights, mirrors and upstreams are resolved against (step 4)."""

    http: frozenset[str]  # subsets included
    tcp: frozenset[str]
    mirrorable: frozenset[str]  # HTTP services that are no subset
    every: frozenset[str]


@dataclass
class Assembly:
    """A mesh's services and problems, and what the incremental builder reuses: each name's
    ownership and candidate, the established order (rank, name) in which services were admitted to
    the edge and how each fared, and the problems of each step by name (in the order a full
    assembly finds them, so that replacing one name's gives what assembling again would)."""

    services: tuple[Service, ...]
    problems: tuple[ServiceProblem, ...]
    ownership: dict[str, Ownership]
    order: list[tuple[Rank, str]]
    candidates: dict[str, Candidate] = field(default_factory=dict)
    admissions: dict[str, Admission] = field(default_factory=dict)  # in established order
    referrers: dict[str, set[str]] = field(default_factory=dict)  # name -> names whose admission names it
    served: Served = Served(frozenset(), frozenset(), frozenset(), frozenset())
    parse_problems: tuple[ServiceProblem, ...] = ()
    candidate_problems: dict[str, tuple[ServiceProblem, ...]] = field(default_factory=dict)  # in name order
    admission_problems: dict[str, tuple[ServiceProblem, ...]] = field(default_factory=dict)  # in established order
    target_problems: dict[str, tuple[ServiceProblem, ...]] = field(default_factory=dict)  # weights and mirror, established order
    upstream_problems: dict[str, tuple[ServiceProblem, ...]] = field(default_factory=dict)  # in name order

    def all_problems(self) -> tuple[ServiceProblem, ...]:
        """Every problem, sorted, each once."""
        problems = list(self.parse_problems)
        for by_name in (self.candidate_problems, self.admission_problems, self.target_problems, self.upstream_problems):
            problems.extend(chain.from_iterable(by_name.values()))  # most are empty: at C speed
        problems.sort(key=lambda p: (p.service or "", p.task_definition, p.container, p.message))
        return tuple(dict.fromkeys(problems))


def candidate(
    name: str,
    ownership: Ownership,
    claims: Mapping[str, Mapping[str, Claim]],
    host_rule: DefaultHostRule | None,
    clusters_of: Mapping[str, Iterable[str]] | None,
    resource_check: ResourceCheck | None,
    endpoints_of: Callable[[str, tuple[Claim, ...]], tuple[Endpoint, ...]],
) -> tuple[Candidate | None, tuple[ServiceProblem, ...]]:
    """Step 2 for one name: its service as the owner declares it (None when refused), and the problems."""
    problems: list[ServiceProblem] = list(ownership.problems)
    winner = ownership.winner.declaration
    route = winner.route
    if host_rule is not None:
        clusters = {c for claim in ownership.accepted for c in (clusters_of or {}).get(claim.task_definition.arn, ())}
        hosts = _default_hosts(host_rule, name, ownership.winner, clusters, problems)
        if hosts is None:
            return None, tuple(problems)
        route = dataclasses.replace(route, hosts=hosts)
    service = Service(
        name=name,
        protocol=winner.protocol,
        route=route,
        container_port=winner.container_port,
        declared_by=ownership.winner.task_definition.display_name,
        endpoints=endpoints_of(name, ownership.accepted),
        policy=winner.policy,
        split=winner.split,
        newest_revision_weight=winner.newest_revision_weight,
        upstreams=winner.upstreams,
    )
    refusal = _resource_refusal(service, winner, resource_check) or _unknown_jwks_service(service, winner, claims)
    if refusal is not None:
        problems.append(refusal)
        return None, tuple(problems)
    revisions = {c.task_definition.display_name: c.task_definition.revision for c in ownership.accepted}
    return Candidate(ownership.rank, service, winner, revisions), tuple(problems)


def assemble(
    claims: Mapping[str, Mapping[str, Claim]],
    parse_problems: Iterable[ServiceProblem],
    limits: Limits = Limits(),
    host_rule: DefaultHostRule | None = None,
    clusters_of: Mapping[str, Iterable[str]] | None = None,
    *,
    resource_check: ResourceCheck | None = None,
    ownership_of: Callable[[str, list[Claim]], Ownership] = resolve,
    endpoints_of: Callable[[str, tuple[Claim, ...]], tuple[Endpoint, ...]] = lambda _, accepted: merged_endpoints(accepted),
) -> Assembly:
    """Steps 2-4: the claims of every service name (by task-definition ARN) -> the Mesh's services
    and problems. `clusters_of`: the clusters each task definition's live tasks run in (for the
    host rule). `ownership_of` and `endpoints_of` may answer from what they kept for names whose
    claims did not change (the incremental builder)."""
    ownerships: dict[str, Ownership] = {}
    candidates: dict[str, Candidate] = {}
    candidate_problems: dict[str, tuple[ServiceProblem, ...]] = {}
    for name in sorted(claims):
        ownership = ownerships[name] = ownership_of(name, list(claims[name].values()))
        found, candidate_problems[name] = candidate(name, ownership, claims, host_rule, clusters_of, resource_check, endpoints_of)
        if found is not None:
            candidates[name] = found

    # Established order: who serves a route first keeps it.
    order = sorted(candidates.values(), key=lambda c: (c.rank, c.service.name))
    edge, tcp_ports = EdgeRoutes(), TcpPorts()
    services: list[Service] = []
    admissions: dict[str, Admission] = {}
    referrers: dict[str, set[str]] = {}
    for found in order:
        service = found.service
        charge = edge.charge(service)
        admission = _refusal(service, edge, charge, limits) or _tcp_port_refusal(service, tcp_ports)
        if admission is None:
            admission = Admission(None, tuple((host, other.name) for host, other in edge.shadowing(service)))
            edge.admit(service, charge)
            tcp_ports.admit(service)
            services.extend(_with_revision_subsets(service, found.revisions))
        admissions[service.name] = admission
        for other in admission.others():
            referrers.setdefault(other, set()).add(service.name)
    admission_problems = {name: admission_problems_of(admission, candidates[name], candidates) for name, admission in admissions.items()}

    served = served_by(services)
    target_problems: dict[str, tuple[ServiceProblem, ...]] = {}
    resolved = []
    for service in services:
        if service.subset_of is not None:
            resolved.append(service)
            continue
        service, target_problems[service.name] = resolved_targets(service, candidates[service.name].declaration, served)
        resolved.append(service)
    resolved.sort(key=lambda s: s.name)
    upstream_problems = {s.name: unknown_upstreams(s, candidates[s.name].declaration, served) for s in resolved if s.subset_of is None}
    assembly = Assembly(
        services=tuple(resolved),
        problems=(),
        ownership=ownerships,
        order=[(found.rank, found.service.name) for found in order],
        candidates=candidates,
        admissions=admissions,
        referrers=referrers,
        served=served,
        parse_problems=tuple(parse_problems),
        candidate_problems=candidate_problems,
        admission_problems=admission_problems,
        target_problems=target_problems,
        upstream_problems=upstream_problems,
    )
    assembly.problems = assembly.all_problems()
    return assembly


def served_by(services: Iterable[Service]) -> Served:
    http, tcp, mirrorable = set(), set(), set()
    for service in services:
        if service.protocol.is_http:
            http.add(service.name)
            if service.subset_of is None:
                mirrorable.add(service.name)
        else:
            tcp.add(service.name)
    return Served(frozenset(http), frozenset(tcp), frozenset(mirrorable), frozenset(http | tcp))


def resolved_targets(service: Service, declaration: ServiceDeclaration, served: Served) -> tuple[Service, tuple[ServiceProblem, ...]]:
    """Step 4 for one admitted service (no subset): its weights and mirror resolved against what is served."""
    problems: list[ServiceProblem] = []
    service = _with_resolved_split(service, declaration, served, problems)
    service = _with_resolved_mirror(service, declaration, served, problems)
    return service, tuple(problems)


def admission_problems_of(admission: Admission, found: Candidate, candidates: Mapping[str, Candidate]) -> tuple[ServiceProblem, ...]:
    """The problems of one admission decision, naming the services it names as they are now."""
    service, declaration = found.service, found.declaration
    refusal = admission.refusal
    if refusal is None:
        return tuple(_shadowed(service, declaration, host, candidates[other].service) for host, other in admission.shadowed_by)
    if refusal[0] == "limit":
        return (_limit_problem(service, declaration, refusal[1]),)
    if refusal[0] == "route":
        return (_route_problem(service, declaration, refusal[1], candidates[refusal[2]].service),)
    return (_tcp_port_problem(service, declaration, refusal[1], candidates[refusal[2]].service),)


def _declarations(
    task_definition: TaskDefinition, prefix: str, problems: list[ServiceProblem], services_from_port_names: bool = False
) -> tuple[ServiceDeclaration, ...]:
    """The declarations of every container of a task definition; a service declared by two
    containers of one task definition is refused in both."""
    found: list[ServiceDeclaration] = []
    for container in task_definition.containers:
        if services_from_port_names:
            container = with_port_name_labels(container, prefix)
        parsed = parse_container_labels(container, prefix)
        found.extend(parsed.declarations)
        problems.extend(_in_task_definition(task_definition, container.name, p) for p in parsed.problems)
    by_name: dict[str, list[ServiceDeclaration]] = defaultdict(list)
    for declaration in found:
        by_name[declaration.name].append(declaration)
    kept = []
    for declaration in found:
        others = [d for d in by_name[declaration.name] if d is not declaration]
        if not others:
            kept.append(declaration)
            continue
        label = declaration.label_prefix + "service"
        problems.append(
            _in_task_definition(
                task_definition,
                declaration.container,
                LabelProblem(
                    label=label,
                    message=(
                        f"label {label}={shown(declaration.name)}: container {shown(others[0].container)} of the same task "
                        f"definition declares service {shown(declaration.name)} too; a service has one container and port "
                        "per task definition: remove one declaration or give it another service name"
                    ),
                    kind=ProblemKind.DUPLICATE_DECLARATION,
                    value=declaration.name,
                    service=declaration.name,
                ),
            )
        )
    return tuple(kept)


def _in_task_definition(task_definition: TaskDefinition, container: str, problem: LabelProblem) -> ServiceProblem:
    return ServiceProblem(
        service=problem.service,
        task_definition=task_definition.display_name,
        container=container,
        label=problem.label,
        value=problem.value,
        severity=problem.severity,
        kind=problem.kind,
        message=f"task definition {task_definition.display_name}, container {shown(container)}: {problem.message}",
    )


def _match_text(route: RouteMatch) -> str:
    def header(h: HeaderMatch) -> str:
        if not h.invert and (h.value is None or h.kind is MatchKind.EXACT):
            return h.name if h.value is None else f"{h.name}={h.value}"
        return f"{h.name}:{h.text}"

    headers = "" if not route.headers else " headers=" + ",".join(header(h) for h in route.headers)
    query = "" if not route.query else " query=" + ",".join(f"{q.name}:{q.text}" for q in route.query)
    priority = f" priority={route.priority}" if route.priority else ""
    return shown(f"{route.path_key}{headers}{query}{priority}", 200)[1:-1]


_ROUTE_LABELS = ("route.hosts", "route.prefix", "route.method", "route.headers", "route.priority")


def _refusal(service: Service, edge: EdgeRoutes, charge: Charge, limits: Limits) -> Admission | None:
    """Why `service` may not join the edge as it is now, or None."""
    exceeded = charge.exceeded(limits, edge.routes)
    if exceeded is not None:
        return Admission(("limit", exceeded))
    blocking = edge.blocking(service)
    if not blocking:
        return None
    host, other = blocking[0]
    return Admission(("route", host, other.name))


def _limit_problem(service: Service, declaration: ServiceDeclaration, exceeded: str) -> ServiceProblem:
    where = f"task definition {service.declared_by}, container {shown(declaration.container)}"
    label = declaration.label("route.hosts", "route.prefix", "route.method", "route.headers")
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container, label=label,
        kind=ProblemKind.LIMIT_EXCEEDED,
        message=f"{where}: service {shown(service.name)} is refused: it would add {exceeded} (docs/labels.md, \"Limits\")",
    )


def _route_problem(service: Service, declaration: ServiceDeclaration, host: str, other: Service) -> ServiceProblem:
    where = f"task definition {service.declared_by}, container {shown(declaration.container)}"
    head = f"service {shown(service.name)} is refused"
    p = declaration.label_prefix
    same = same_match(other.route, service.route)
    how = "has the same match as" if same else "would take every call of"
    label = declaration.label(*(_ROUTE_LABELS if same else ("route.priority", *_ROUTE_LABELS)))
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container, label=label,
        kind=ProblemKind.ROUTE_CONFLICT,
        message=(
            f"{where}: {head}: its route on host {host} ({_match_text(service.route)}) {how} the route of service "
            f"{shown(other.name)} (task definition {other.declared_by}, {_match_text(other.route)}), which served it first; "
            f"give one of them another {p}route.hosts, {p}route.prefix, {p}route.method or {p}route.headers"
        ),
    )


def _tcp_port_refusal(service: Service, ports: TcpPorts) -> Admission | None:
    """Why TCP service `service` may not have its port: an established TCP service holds the port's
    catch-all or one of its SNI names there."""
    blocking = ports.blocking(service)
    return None if blocking is None else Admission(("port", blocking[0], blocking[1].name))


def _tcp_port_problem(service: Service, declaration: ServiceDeclaration, name: str, other: Service) -> ServiceProblem:
    p = declaration.label_prefix
    where = f"task definition {service.declared_by}, container {shown(declaration.container)}: service {shown(service.name)} is refused"
    if name == "*":  # both without hosts: the port's one catch-all
        label = p + "route.port"
        message = (
            f"{where}: its tcp port {service.route.port} ({label}) is the port of service {shown(other.name)} (task definition "
            f"{other.declared_by}), which served it first; give one of them another {p}route.port, or each its "
            f"{p}route.hosts (TLS SNI names) to share the port"
        )
        value = str(service.route.port)
    else:
        label = p + "route.hosts"
        message = (
            f"{where}: on its tcp port {service.route.port}, TLS SNI name {name} ({label}) is taken by service {shown(other.name)} "
            f"(task definition {other.declared_by}), which served it first; give one of them another {label} or {p}route.port"
        )
        value = ",".join(service.route.hosts)
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container, label=label,
        value=value, kind=ProblemKind.ROUTE_CONFLICT, message=message,
    )


def _shadowed(service: Service, declaration: ServiceDeclaration, host: str, other: Service) -> ServiceProblem:
    """The warning for a host where an established route takes every call of `service`'s route."""
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container,
        label=declaration.label("route.priority", *_ROUTE_LABELS), severity="warning", kind=ProblemKind.SHADOWED_ROUTE,
        message=(
            f"task definition {service.declared_by}, container {shown(declaration.container)}: the route of service "
            f"{shown(service.name)} on host {host} ({_match_text(service.route)}) never matches: the route of service "
            f"{shown(other.name)} ({_match_text(other.route)}) comes first and takes all its calls"
        ),
    )


def subset_name(service: str, task_definition: str) -> str:
    """The per-revision subset of a service: `orders@orders:7` (service names never contain '@')."""
    return f"{service}@{task_definition}"


def _with_revision_subsets(service: Service, revisions: dict[str, int]) -> list[Service]:
    """A service split by revision: the newest revision gets its percent, the older ones share the rest
    in proportion to their endpoints. Each revision is a subset service (its own cluster, no route)."""
    weight = service.newest_revision_weight
    if weight is None or service.split is not None:
        return [service]
    by_revision: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in service.endpoints:
        by_revision[endpoint.task_definition].append(endpoint)
    older = {td: eps for td, eps in by_revision.items() if td != service.declared_by}
    if not older:
        return [service]
    older_total = sum(len(eps) for eps in older.values())
    targets = [WeightedTarget(subset_name(service.name, service.declared_by), weight * older_total)]
    targets += [WeightedTarget(subset_name(service.name, td), (100 - weight) * len(eps)) for td, eps in older.items()]
    subsets = [
        Service(
            name=target.service,
            protocol=service.protocol,
            route=RouteMatch(enabled=False),
            container_port=service.container_port,
            declared_by=service.declared_by,
            endpoints=tuple(by_revision[target.service.split("@", 1)[1]]),
            policy=service.policy,
            subset_of=service.name,
        )
        for target in targets
    ]
    split = Split(tuple(sorted(targets, key=lambda t: (-revisions.get(t.service.split("@", 1)[1], 0), t.service))))
    return [dataclasses.replace(service, split=split), *subsets]


def _unknown_target(
    service: Service, declaration: ServiceDeclaration, name: str, value: str, missing: list[str], then: str,
    which: str = "which no running task serves",
) -> ServiceProblem:
    label = declaration.label_prefix + name
    return ServiceProblem(
        service=service.name,
        task_definition=service.declared_by,
        container=declaration.container,
        label=label,
        value=value,
        severity="warning",
        kind=ProblemKind.UNKNOWN_TARGET,
        message=(
            f"task definition {service.declared_by}, container {shown(declaration.container)}: label {label} names "
            f"{', '.join(repr(m) for m in missing)}, {which}; {then}"
        ),
    )


def _unknown_targets(
    service: Service, declaration: ServiceDeclaration, name: str, value: str, missing: list[str], then: str, other: set[str]
) -> list[ServiceProblem]:
    """A warning for the targets nothing serves and one for the targets of the other kind (`other`):
    TCP services for an HTTP service's calls, HTTP services for a TCP service's connections."""
    unknown, mismatched = [m for m in missing if m not in other], [m for m in missing if m in other]
    found = [_unknown_target(service, declaration, name, value, unknown, then)] if unknown else []
    if mismatched:
        one, several = ("a tcp service, which takes no HTTP calls", "tcp services, which take no HTTP calls") if service.protocol.is_http else (
            "an HTTP service, which takes no tcp connections", "HTTP services, which take no tcp connections"
        )
        which = one if len(mismatched) == 1 else several
        found.append(_unknown_target(service, declaration, name, value, mismatched, then, which))
    return found


def _with_resolved_split(service: Service, declaration: ServiceDeclaration, served: Served, problems: list[ServiceProblem]) -> Service:
    """Weights naming services we do not serve are dropped with a warning; the route is never dropped
    (with no target left it goes to the service itself)."""
    if service.split is None:
        return service
    # HTTP calls go to HTTP services, TCP connections to TCP services.
    targets, other = (served.http, served.tcp) if service.protocol.is_http else (served.tcp, served.http)
    missing = [t.service for t in service.split.targets if t.service not in targets]
    kept = tuple(t for t in service.split.targets if t.service in targets)
    usable = bool(kept) and sum(t.weight for t in kept) > 0
    if missing:
        value = ",".join(f"{t.service}:{t.weight}" for t in service.split.targets)
        then = "the remaining weights are used" if usable else "calls go to " + repr(service.name)
        problems.extend(_unknown_targets(service, declaration, "route.weights", value, missing, then, set(other)))
    return dataclasses.replace(service, split=Split(kept) if usable else None)


def _default_hosts(
    rule: DefaultHostRule, name: str, owner: Claim, clusters: set[str], problems: list[ServiceProblem]
) -> tuple[str, ...] | None:
    """The service's hosts under the default host rule: its own `xds.route.hosts` when set, else the
    rule's; None (with an error) when the rule gives no valid host for it."""
    declaration = owner.declaration
    if "route.hosts" in declaration.labels_set or not declaration.route.enabled or not declaration.protocol.is_http:
        return declaration.route.hosts
    try:
        return rule.hosts(name, owner.task_definition.family, sorted(clusters))
    except ValueError as reason:
        label = declaration.label_prefix + "service"
        td = owner.task_definition.display_name
        problems.append(
            ServiceProblem(
                service=name, task_definition=td, container=declaration.container, label=label, value=name,
                kind=ProblemKind.MISSING_LABEL,
                message=(
                    f"task definition {td}, container {shown(declaration.container)}: label {label}={shown(name)}: the default "
                    f"host rule {shown(rule.template)} gives no host for it ({reason}): set {declaration.label_prefix}route.hosts"
                ),
            )
        )
        return None


def _with_resolved_mirror(service: Service, declaration: ServiceDeclaration, served: Served, problems: list[ServiceProblem]) -> Service:
    """A mirror naming a service we do not serve is dropped with a warning; the route stays."""
    mirror = service.policy.mirror
    if mirror is None or mirror.service in served.mirrorable:
        return service
    then = "calls are not mirrored until one does"
    problems.extend(_unknown_targets(service, declaration, "mirror.service", mirror.service, [mirror.service], then, set(served.tcp)))
    return dataclasses.replace(service, policy=dataclasses.replace(service.policy, mirror=None))


def unknown_upstreams(service: Service, declaration: ServiceDeclaration, served: Served) -> tuple[ServiceProblem, ...]:
    """The warning for the upstreams of `service` that nothing serves, if any."""
    missing = [name for name in service.upstreams if name not in served.every]
    if not missing:
        return ()
    then = "its sidecars get no route to them until one does"
    return (_unknown_target(service, declaration, "upstreams", ",".join(service.upstreams), missing, then),)


def _resource_refusal(service: Service, declaration: ServiceDeclaration, check: ResourceCheck | None) -> ServiceProblem | None:
    found = check(service) if check is not None else None
    if found is None:
        return None
    name, reason = found
    label = declaration.label_prefix + name
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container, label=label,
        kind=ProblemKind.INVALID_VALUE,
        message=f"task definition {service.declared_by}, container {shown(declaration.container)}: label {label}: {escaped(reason, 400)}",
    )


def _unknown_jwks_service(service: Service, declaration: ServiceDeclaration, declared: Mapping[str, Mapping[str, Claim]]) -> ServiceProblem | None:
    """A JWKS service nothing declares: refused, since calls could never be checked (JWT fails closed)."""
    jwt = service.policy.jwt
    if jwt is None or jwt.jwks_service is None or jwt.jwks_service in declared:
        return None
    label = declaration.label_prefix + "jwt.jwks-service"
    return ServiceProblem(
        service=service.name, task_definition=service.declared_by, container=declaration.container, label=label,
        value=jwt.jwks_service, kind=ProblemKind.UNKNOWN_TARGET,
        message=(
            f"task definition {service.declared_by}, container {shown(declaration.container)}: label {label}={shown(jwt.jwks_service)}: "
            f"no task declares that service, so no cluster serves {jwt.jwks_uri}; service {shown(service.name)} is refused "
            "until one does (its calls could not be checked)"
        ),
    )
