"""Cluster views -> the Mesh. Pure and deterministic: the same views give an equal Mesh."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.errors import LabelError
from controlplane.model.labels import (
    DEFAULT_PREFIX,
    ServiceDeclaration,
    parse_declarations,
    unknown_labels,
)
from controlplane.model.lifecycle import HealthPolicy, endpoint_health
from controlplane.model.mesh import (
    Endpoint,
    Mesh,
    RouteMatch,
    Service,
    ServiceProblem,
    Split,
    WeightedTarget,
)


def build_mesh(
    states: Iterable[ClusterState], prefix: str = DEFAULT_PREFIX, health_policy: HealthPolicy = HealthPolicy()
) -> Mesh:
    """Every service declared by the labels of live tasks, with their endpoints and problems."""
    problems: list[ServiceProblem] = []
    declarations: dict[str, list[tuple[TaskDefinition, ServiceDeclaration]]] = defaultdict(list)
    endpoints: dict[str, dict[tuple[str, int], Endpoint]] = defaultdict(dict)
    holders: dict[str, dict[tuple[str, int], Task]] = defaultdict(dict)
    seen_task_definitions: dict[str, list[ServiceDeclaration]] = {}

    for state in states:
        for task in state.tasks:
            task_definition = state.task_definitions.get(task.task_definition_arn)
            if task_definition is None:
                continue
            if task_definition.arn not in seen_task_definitions:
                seen_task_definitions[task_definition.arn] = _declarations(task_definition, prefix, problems)
                for declaration in seen_task_definitions[task_definition.arn]:
                    declarations[declaration.name].append((task_definition, declaration))
            for declaration in seen_task_definitions[task_definition.arn]:
                health = endpoint_health(task, declaration.container, task_definition, health_policy)
                reachable = task.endpoint_for(declaration.container, declaration.container_port)
                if health is None or reachable is None:
                    continue
                key = (reachable.address, reachable.port)
                held = holders[declaration.name].get(key)
                if held is not None and _claim(held) > _claim(task):
                    continue  # an address reused by a newer task is the newer task's (see _claim)
                holders[declaration.name][key] = task
                endpoints[declaration.name][key] = Endpoint(
                    address=reachable.address,
                    port=reachable.port,
                    task_arn=task.arn,
                    cluster=task.cluster,
                    task_definition=task_definition.display_name,
                    health=health,
                    availability_zone=task.availability_zone,
                )

    services: list[Service] = []
    for name in sorted(declarations):
        task_definition, winner = _newest(declarations[name])
        for other_td, other in declarations[name]:
            if other.settings() != winner.settings():
                problems.append(
                    ServiceProblem(
                        service=name,
                        task_definition=other_td.display_name,
                        container=other.container,
                        severity="warning",
                        message=(
                            f"service {name!r}: task definition {other_td.display_name} declares different settings "
                            f"than {task_definition.display_name}; the newest revision's settings are used"
                        ),
                    )
                )
        service = Service(
            name=name,
            protocol=winner.protocol,
            route=winner.route,
            container_port=winner.container_port,
            declared_by=task_definition.display_name,
            endpoints=tuple(sorted(endpoints[name].values(), key=lambda e: (e.address, e.port))),
            policy=winner.policy,
            split=winner.split,
            newest_revision_weight=winner.newest_revision_weight,
            upstreams=winner.upstreams,
        )
        services.extend(_with_revision_subsets(service, {td.display_name: td.revision for td, _ in declarations[name]}))
    services = _without_route_conflicts(services, problems, prefix)
    kept_names = {s.name for s in services}
    services = [s for s in services if s.subset_of is None or s.subset_of in kept_names]
    services = sorted(_with_resolved_splits(services, problems, prefix), key=lambda s: s.name)
    problems.sort(key=lambda p: (p.service or "", p.task_definition, p.container, p.message))
    return Mesh(services=tuple(services), problems=tuple(dict.fromkeys(problems)))


def _claim(task: Task) -> tuple[float, str]:
    """Which of two tasks claiming one address and port wins: the one ECS started last (then the
    ARN). ECS's own fields, never the order tasks were listed or events arrived in, so every
    replica picks the same."""
    return (task.started_at if task.started_at is not None else float("-inf"), task.arn)


def _declarations(
    task_definition: TaskDefinition, prefix: str, problems: list[ServiceProblem]
) -> list[ServiceDeclaration]:
    found: list[ServiceDeclaration] = []
    for container in task_definition.containers:
        parsed = parse_declarations(container, prefix)
        for result in parsed:
            if isinstance(result, LabelError):
                problems.append(
                    ServiceProblem(
                        service=_declared_name(container.labels, result, prefix),
                        task_definition=task_definition.display_name,
                        container=container.name,
                        label=result.label,
                        value=result.value,
                        message=f"task definition {task_definition.display_name}, container {container.name!r}: {result}",
                    )
                )
            else:
                found.append(result)
        if not parsed:
            continue
        first = next((d.name for d in found if d.container == container.name), None)
        for label in unknown_labels(container.labels, prefix):
            problems.append(
                ServiceProblem(
                    service=first or container.labels.get(prefix + "service"),
                    task_definition=task_definition.display_name,
                    container=container.name,
                    label=label,
                    value=container.labels[label],
                    severity="warning",
                    message=(
                        f"task definition {task_definition.display_name}, container {container.name!r}: "
                        f"unknown label {label}={container.labels[label]!r} is ignored (see docs/labels.md)"
                    ),
                )
            )
    return found


def _declared_name(labels: Mapping[str, str], error: LabelError, prefix: str) -> str | None:
    """The service name of the (possibly indexed) declaration whose label is malformed."""
    label = error.label or ""
    rest = label[len(prefix) :] if label.startswith(prefix) else ""
    index, dot, _ = rest.partition(".")
    if index.isdigit() and dot:
        return labels.get(f"{prefix}{index}.service")
    return labels.get(prefix + "service")


def _newest(candidates: list[tuple[TaskDefinition, ServiceDeclaration]]) -> tuple[TaskDefinition, ServiceDeclaration]:
    """Mid-rollout, old and new revisions may disagree: the highest revision wins, then family, then
    container, then ARN (a total order: the same winner on every replica, whatever the listing order)."""
    return max(candidates, key=lambda pair: (pair[0].revision, pair[0].family, pair[1].container, pair[0].arn))


def _without_route_conflicts(
    services: list[Service], problems: list[ServiceProblem], prefix: str = DEFAULT_PREFIX
) -> list[Service]:
    """Two services cannot own the same host and match (path and headers): the first by name keeps it."""
    owners: dict[tuple[str, str, tuple[object, ...]], str] = {}
    kept: list[Service] = []
    for service in services:
        if not service.route.enabled:
            kept.append(service)
            continue
        keys = [(host, service.route.path_key, service.route.headers) for host in service.route.hosts]
        clashes = [owners[key] for key in keys if key in owners]
        if clashes:
            problems.append(
                ServiceProblem(
                    service=service.name,
                    task_definition=service.declared_by,
                    container="",
                    message=(
                        f"service {service.name!r}: route hosts={','.join(service.route.hosts)} "
                        f"{service.route.path_key}{_headers_text(service.route)} is already served by {clashes[0]!r}; "
                        f"give one of them a different {prefix}route.hosts or {prefix}route.prefix"
                    ),
                )
            )
            continue
        for key in keys:
            owners[key] = service.name
        kept.append(service)
    return kept


def _headers_text(route: RouteMatch) -> str:
    if not route.headers:
        return ""
    return " headers=" + ",".join(h.name if h.value is None else f"{h.name}={h.value}" for h in route.headers)


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
    return [_replace(service, split=split), *subsets]


def _replace(service: Service, **changes: object) -> Service:
    import dataclasses

    return dataclasses.replace(service, **changes)  # type: ignore[arg-type]


def _with_resolved_splits(services: list[Service], problems: list[ServiceProblem], prefix: str) -> list[Service]:
    """Weights naming services we do not serve are dropped with a warning; the route is never dropped
    (with no target left it goes to the service itself)."""
    served = {service.name for service in services}
    resolved: list[Service] = []
    for service in services:
        if service.split is None or service.subset_of is not None:
            resolved.append(service)
            continue
        missing = [t.service for t in service.split.targets if t.service not in served]
        kept = tuple(t for t in service.split.targets if t.service in served)
        if missing:
            problems.append(
                ServiceProblem(
                    service=service.name,
                    task_definition=service.declared_by,
                    container="",
                    label=prefix + "route.weights",
                    value=",".join(f"{t.service}:{t.weight}" for t in service.split.targets),
                    severity="warning",
                    message=(
                        f"service {service.name!r}: label {prefix}route.weights names {', '.join(repr(m) for m in missing)}, "
                        f"which no running task serves; {'the remaining weights are used' if kept and sum(t.weight for t in kept) else 'calls go to ' + repr(service.name)}"
                    ),
                )
            )
        if not kept or sum(t.weight for t in kept) == 0:
            resolved.append(_replace(service, split=None))
        else:
            resolved.append(_replace(service, split=Split(kept)))
    return resolved
