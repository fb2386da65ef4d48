"""Small builders of discovery views for the pure-function tests (model, translate)."""

from __future__ import annotations

from controlplane.discovery.state import (
    ClusterState,
    ContainerDefinition,
    ContainerEndpoint,
    PortMapping,
    Task,
    TaskDefinition,
)

ACCOUNT = "arn:aws:ecs:eu-west-1:123456789012"


def task_definition(
    family: str,
    revision: int = 1,
    labels: dict[str, str] | None = None,
    ports: tuple[int, ...] = (50051,),
    container: str = "app",
    network_mode: str = "awsvpc",
    extra_containers: tuple[ContainerDefinition, ...] = (),
) -> TaskDefinition:
    return TaskDefinition(
        arn=f"{ACCOUNT}:task-definition/{family}:{revision}",
        family=family,
        revision=revision,
        network_mode=network_mode,
        containers=(
            ContainerDefinition(
                name=container,
                labels=dict(labels or {}),
                port_mappings=tuple(PortMapping(container_port=p) for p in ports),
            ),
            *extra_containers,
        ),
    )


def task(
    td: TaskDefinition,
    task_id: str,
    address: str,
    *,
    port: int | None = None,
    last_status: str = "RUNNING",
    desired_status: str = "RUNNING",
    container_health: str = "HEALTHY",
    zone: str = "eu-west-1a",
    cluster: str = "prod",
    started_at: float | None = None,
) -> Task:
    container = td.containers[0]
    endpoints = tuple(
        ContainerEndpoint(container.name, m.container_port, address, port or m.container_port)
        for m in container.port_mappings
    )
    return Task(
        arn=f"{ACCOUNT}:task/{cluster}/{task_id}",
        cluster=cluster,
        task_definition_arn=td.arn,
        group=f"service:{td.family}",
        last_status=last_status,
        desired_status=desired_status,
        health_status=container_health,
        availability_zone=zone,
        container_health={container.name: container_health},
        endpoints=endpoints,
        started_at=started_at,
    )


def cluster_state(tasks: list[Task], tds: list[TaskDefinition], cluster: str = "prod") -> ClusterState:
    return ClusterState(
        cluster=cluster,
        tasks=tuple(tasks),
        task_definitions={td.arn: td for td in tds},
        synced_at=0.0,
    )
