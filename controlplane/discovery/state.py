"""The immutable view of an ECS cluster that discovery emits and the model reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PortMapping:
    container_port: int
    host_port: int | None = None
    protocol: str = "tcp"
    # Service Connect's port name and application protocol (grpc, http2, http), when set.
    name: str | None = None
    app_protocol: str | None = None


@dataclass(frozen=True, slots=True)
class ContainerDefinition:
    """The part of a task definition's container definition that we read."""

    name: str
    labels: Mapping[str, str]
    port_mappings: tuple[PortMapping, ...] = ()
    # A container health check is defined: ECS reports the container's healthStatus (UNKNOWN
    # until the first check passes), and only DescribeTasks shows it.
    health_check: bool = False


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

    @property
    def health_checked(self) -> bool:
        """True when some container has a health check, so the task's health needs DescribeTasks."""
        return any(container.health_check for container in self.containers)


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
    # healthStatus per container name, as DescribeTasks last reported it (events carry none).
    container_health: Mapping[str, str]
    endpoints: tuple[ContainerEndpoint, ...]
    started_at: float | None = None
    # lastStatus per container name; a container missing here is taken to share the task's.
    container_status: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    # ECS's startedBy: for a service's task, the id of the deployment that started it.
    started_by: str = ""

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def service_name(self) -> str | None:
        return self.group.split(":", 1)[1] if self.group.startswith("service:") else None

    def container_last_status(self, container_name: str) -> str:
        return self.container_status.get(container_name, self.last_status)

    def endpoint_for(self, container_name: str, container_port: int) -> ContainerEndpoint | None:
        for endpoint in self.endpoints:
            if endpoint.container_name == container_name and endpoint.container_port == container_port:
                return endpoint
        return None


class ChangeLog:
    """The ARNs of the tasks that changed (came, went, or changed state) in one cluster's task
    table, in order; append-only, the oldest entries beyond `keep` forgotten. Shared by every
    ClusterState of that table: a state records its `position`, so a reader that applied the state
    at position p and now reads the state at q learns which tasks changed from `between(p, q)`,
    whatever states it skipped."""

    def __init__(self, keep: int = 100_000) -> None:
        self._keep = keep
        self._arns: list[str] = []
        self._base = 0  # entries forgotten so far

    @property
    def position(self) -> int:
        return self._base + len(self._arns)

    def __len__(self) -> int:
        """Entries held: at most 2 x `keep` (the controlplane_discovery_cache_entries{cache="change_log"} metric)."""
        return len(self._arns)

    def record(self, arn: str) -> None:
        self._arns.append(arn)
        if len(self._arns) > 2 * self._keep:
            del self._arns[: self._keep]
            self._base += self._keep

    def between(self, start: int, end: int) -> frozenset[str] | None:
        """The tasks that changed between two positions (two states' `position`); None when that
        is forgotten, or the positions are not in order (compare every task)."""
        if start < self._base or start > end or end > self.position:
            return None
        return frozenset(self._arns[start - self._base : end - self._base])


@dataclass(frozen=True, slots=True)
class ClusterState:
    """The last known-good view of one ECS cluster.

    A task that did not change between two states of one cluster is the same Task object in both.
    `changes` (with the state's `position` in it) names the tasks that changed since any earlier
    state of the same table, and then `tasks` are in ARN order; None when unknown (compare every task)."""

    cluster: str
    tasks: tuple[Task, ...]
    task_definitions: Mapping[str, TaskDefinition]
    synced_at: float
    changes: ChangeLog | None = field(default=None, compare=False, repr=False)
    position: int = field(default=0, compare=False)

    def same_view(self, other: ClusterState | None) -> bool:
        """True when the tasks and task definitions are the same (the sync time may differ)."""
        return (
            other is not None
            and self.cluster == other.cluster
            and self.tasks == other.tasks
            and set(self.task_definitions) == set(other.task_definitions)
        )
