"""The immutable view of an ECS cluster that discovery emits and the model reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True, slots=True)
class PortMapping:
    container_port: int
    host_port: int | None = None
    protocol: str = "tcp"


@dataclass(frozen=True, slots=True)
class ContainerDefinition:
    """The part of a task definition's container definition that we read."""

    name: str
    labels: Mapping[str, str]
    port_mappings: tuple[PortMapping, ...] = ()




@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """A task definition revision; immutable per ARN in ECS, so cached forever by ARN."""

    arn: str
    family: str
    revision: int
    network_mode: str
    containers: tuple[ContainerDefinition, ...]

    @property
    def display_name(self) -> str:
        return f"{self.family}:{self.revision}"


@dataclass(frozen=True, slots=True)
class ContainerEndpoint:
    """Where one container port of a task can be reached."""

    container_name: str
    container_port: int
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class Task:
    """One ECS task as the product needs it."""

    arn: str
    cluster: str
    task_definition_arn: str
    group: str
    last_status: str
    desired_status: str
    health_status: str
    availability_zone: str
    container_health: Mapping[str, str]
    endpoints: tuple[ContainerEndpoint, ...]
    started_at: float | None = None

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def service_name(self) -> str | None:
        return self.group.split(":", 1)[1] if self.group.startswith("service:") else None

    def endpoint_for(self, container_name: str, container_port: int) -> ContainerEndpoint | None:
        for endpoint in self.endpoints:
            if endpoint.container_name == container_name and endpoint.container_port == container_port:
                return endpoint
        return None




@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one sync of a cluster cost and how it went."""

    started_at: float
    duration_seconds: float
    api_calls: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterState:
    """The last known-good view of one ECS cluster."""

    cluster: str
    tasks: tuple[Task, ...]
    task_definitions: Mapping[str, TaskDefinition]
    synced_at: float

    def same_view(self, other: ClusterState | None) -> bool:
        """True when the tasks and task definitions are the same (the sync time may differ)."""
        return (
            other is not None
            and self.cluster == other.cluster
            and self.tasks == other.tasks
            and set(self.task_definitions) == set(other.task_definitions)
        )
