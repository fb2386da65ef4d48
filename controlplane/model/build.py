"""Cluster views -> the Mesh. Pure and deterministic: the same views give an equal Mesh."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from controlplane.discovery.state import ClusterState, TaskDefinition
from controlplane.errors import LabelError
from controlplane.model.labels import DEFAULT_PREFIX, ServiceDeclaration, parse_container, unknown_labels
from controlplane.model.lifecycle import endpoint_health
from controlplane.model.mesh import Endpoint, Mesh, Service, ServiceProblem


def build_mesh(states: Iterable[ClusterState], prefix: str = DEFAULT_PREFIX) -> Mesh:
    """Every service declared by the labels of live tasks, with their endpoints and problems."""
    problems: list[ServiceProblem] = []
    declarations: dict[str, list[tuple[TaskDefinition, ServiceDeclaration]]] = defaultdict(list)
    endpoints: dict[str, dict[tuple[str, int], Endpoint]] = defaultdict(dict)
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
                health = endpoint_health(task, declaration.container)
                reachable = task.endpoint_for(declaration.container, declaration.container_port)
                if health is None or reachable is None:
                    continue
                key = (reachable.address, reachable.port)
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
            if (other.protocol, other.route, other.container_port) != (winner.protocol, winner.route, winner.container_port):
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
        services.append(
            Service(
                name=name,
                protocol=winner.protocol,
                route=winner.route,
                container_port=winner.container_port,
                declared_by=task_definition.display_name,
                endpoints=tuple(sorted(endpoints[name].values(), key=lambda e: (e.address, e.port))),
            )
        )
    services = _without_route_conflicts(services, problems, prefix)
    problems.sort(key=lambda p: (p.service or "", p.task_definition, p.container, p.message))
    return Mesh(services=tuple(services), problems=tuple(dict.fromkeys(problems)))


def _declarations(
    task_definition: TaskDefinition, prefix: str, problems: list[ServiceProblem]
) -> list[ServiceDeclaration]:
    found: list[ServiceDeclaration] = []
    for container in task_definition.containers:
        try:
            declaration = parse_container(container, prefix)
        except LabelError as error:
            problems.append(
                ServiceProblem(
                    service=container.labels.get(prefix + "service"),
                    task_definition=task_definition.display_name,
                    container=container.name,
                    label=error.label,
                    value=error.value,
                    message=f"task definition {task_definition.display_name}, container {container.name!r}: {error}",
                )
            )
            continue
        if declaration is None:
            continue
        for label in unknown_labels(container.labels, prefix):
            problems.append(
                ServiceProblem(
                    service=declaration.name,
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
        found.append(declaration)
    return found


def _newest(candidates: list[tuple[TaskDefinition, ServiceDeclaration]]) -> tuple[TaskDefinition, ServiceDeclaration]:
    """Mid-rollout, old and new revisions may disagree: the highest revision wins, then family, then container."""
    return max(candidates, key=lambda pair: (pair[0].revision, pair[0].family, pair[1].container))


def _without_route_conflicts(
    services: list[Service], problems: list[ServiceProblem], prefix: str = DEFAULT_PREFIX
) -> list[Service]:
    """Two services cannot own the same host and path prefix: the first by name keeps it."""
    owners: dict[tuple[str, str], str] = {}
    kept: list[Service] = []
    for service in services:
        clashes = [
            owners[(host, service.route.path_prefix)]
            for host in service.route.hosts
            if (host, service.route.path_prefix) in owners
        ]
        if clashes:
            problems.append(
                ServiceProblem(
                    service=service.name,
                    task_definition=service.declared_by,
                    container="",
                    message=(
                        f"service {service.name!r}: route hosts={','.join(service.route.hosts)} "
                        f"prefix={service.route.path_prefix} is already served by {clashes[0]!r}; "
                        f"give one of them a different {prefix}route.hosts or {prefix}route.prefix"
                    ),
                )
            )
            continue
        for host in service.route.hosts:
            owners[(host, service.route.path_prefix)] = service.name
        kept.append(service)
    return kept
