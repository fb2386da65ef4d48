"""The in-memory ECS objects: clusters, container instances, task definitions, tasks, services.

Plain mutable dataclasses guarded by the owning ``LocalEcs`` lock; the API layer
renders them into AWS response shapes.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

# Task lifecycle states in the order AWS reports them.
PROVISIONING = "PROVISIONING"
PENDING = "PENDING"
ACTIVATING = "ACTIVATING"
RUNNING = "RUNNING"
DEACTIVATING = "DEACTIVATING"
STOPPING = "STOPPING"
DEPROVISIONING = "DEPROVISIONING"
STOPPED = "STOPPED"

HEALTHY = "HEALTHY"
UNHEALTHY = "UNHEALTHY"
UNKNOWN = "UNKNOWN"


def new_task_id() -> str:
    """A 32-hex-digit id like the ones AWS uses for tasks and container instances."""
    return secrets.token_hex(16)


def new_instance_id() -> str:
    """An EC2 instance id: ``i-`` and 17 hex digits."""
    return "i-" + secrets.token_hex(9)[:17]


def new_managed_instance_id() -> str:
    """An SSM managed instance id (ECS Anywhere): ``mi-`` and 17 hex digits."""
    return "mi-" + secrets.token_hex(9)[:17]


@dataclass(frozen=True)
class Arns:
    """Builds ARNs for one region and account."""

    region: str = "us-east-1"
    account: str = "000000000000"

    def _prefix(self) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account}"

    def cluster(self, name: str) -> str:
        return f"{self._prefix()}:cluster/{name}"

    def task(self, cluster: str, task_id: str) -> str:
        return f"{self._prefix()}:task/{cluster}/{task_id}"

    def container(self, cluster: str, task_id: str, container_id: str) -> str:
        return f"{self._prefix()}:container/{cluster}/{task_id}/{container_id}"

    def container_instance(self, cluster: str, instance_id: str) -> str:
        return f"{self._prefix()}:container-instance/{cluster}/{instance_id}"

    def task_definition(self, family: str, revision: int) -> str:
        return f"{self._prefix()}:task-definition/{family}:{revision}"

    def service(self, cluster: str, name: str) -> str:
        return f"{self._prefix()}:service/{cluster}/{name}"


def _uuid() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def new_uuid() -> str:
    """A random UUID string (attachment and container ids)."""
    return _uuid()


@dataclass
class ContainerInstance:
    """An EC2 instance registered to a cluster; bridge and host tasks listen on its address."""

    arn: str
    id: str
    cluster: str
    ec2_instance_id: str
    address: str
    availability_zone: str
    registered_at: float = field(default_factory=time.time)
    # ECS Anywhere: an on-premises server registered through SSM. Its "ec2InstanceId" is its
    # managed instance id (mi-...), EC2 does not know it, SSM reports its address.
    external: bool = False


@dataclass
class Cluster:
    """An ECS cluster with its container instances."""

    name: str
    arn: str
    instances: list[ContainerInstance] = field(default_factory=list)
    status: str = "ACTIVE"
    created_at: float = field(default_factory=time.time)
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass
class TaskDefinition:
    """A registered task definition revision; ``body`` is the echoed AWS shape."""

    arn: str
    family: str
    revision: int
    body: dict[str, Any]
    status: str = "ACTIVE"
    registered_at: float = field(default_factory=time.time)
    deregistered_at: float | None = None
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def network_mode(self) -> str:
        return str(self.body.get("networkMode", "bridge"))

    @property
    def container_definitions(self) -> list[dict[str, Any]]:
        return list(self.body.get("containerDefinitions", []))


IPV4_ANY = "0.0.0.0"
IPV6_ANY = "::"


@dataclass
class PortBinding:
    """A container port published on a host port, as Docker reports one binding (one per bind address)."""

    container_port: int
    host_port: int
    protocol: str = "tcp"
    # True when the local ECS allocated host_port and must give it back.
    dynamic: bool = False
    # Docker publishes a bridge port on 0.0.0.0 and on ::, each its own binding (moby#42375:
    # with dynamic ports the two may get different host ports). The process listens on IPv4 only.
    bind_ip: str = IPV4_ANY


@dataclass
class Container:
    """One container of a task: its definition plus runtime state."""

    name: str
    arn: str
    image: str
    essential: bool
    command: list[str]
    environment: dict[str, str]
    health_check: dict[str, Any] | None
    stop_timeout: float
    bindings: list[PortBinding] = field(default_factory=list)
    last_status: str = PENDING
    health_status: str = UNKNOWN
    exit_code: int | None = None
    reason: str | None = None
    runtime_id: str | None = None
    log_path: str | None = None


@dataclass
class Task:
    """A task: one set of local processes on one address."""

    id: str
    arn: str
    cluster: str
    task_definition: TaskDefinition
    group: str
    launch_type: str
    network_mode: str
    host_address: str
    containers: list[Container]
    availability_zone: str
    started_by: str | None = None
    service_name: str | None = None
    deployment_id: str | None = None
    container_instance: ContainerInstance | None = None
    subnet_id: str | None = None
    eni_id: str | None = None
    mac_address: str | None = None
    attachment_id: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, str]] = field(default_factory=list)
    last_status: str = PROVISIONING
    desired_status: str = RUNNING
    attachment_status: str = "PRECREATED"
    created_at: float = field(default_factory=time.time)
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    version: int = 1
    updated_at: float = field(default_factory=time.time)
    # Set by whoever asks the task to stop; the task runner thread waits on it.
    stop_requested: threading.Event = field(default_factory=threading.Event)
    # Address-only task (scale runs): goes through the lifecycle without processes.
    address_only: bool = False
    # Started by a service that declares loadBalancers: stopping goes through DEACTIVATING
    # (the target group's deregistration delay) before SIGTERM, as in ECS.
    load_balanced: bool = False
    # Called (under the LocalEcs lock) after every state change: the event stream.
    on_change: Any = field(default=None, repr=False, compare=False)

    @property
    def health_status(self) -> str:
        """Aggregate of essential containers that have a health check, as AWS computes it."""
        checked = [c for c in self.containers if c.essential and c.health_check]
        if any(c.health_status == UNHEALTHY for c in checked):
            return UNHEALTHY
        if checked and all(c.health_status == HEALTHY for c in checked):
            return HEALTHY
        return UNKNOWN

    @property
    def eni_address(self) -> str | None:
        """The task's own address when it has an ENI (awsvpc)."""
        return self.host_address if self.network_mode == "awsvpc" else None

    def touch(self) -> None:
        """Bump ``version`` as AWS does on every state change, and emit the change event."""
        self.version += 1
        self.updated_at = time.time()
        if self.on_change is not None:
            self.on_change(self)


@dataclass
class Deployment:
    """One task definition rolling out in a service."""

    id: str
    task_definition: TaskDefinition
    desired_count: int
    status: str = "PRIMARY"
    rollout_state: str = "IN_PROGRESS"
    rollout_state_reason: str = "ECS deployment in progress."
    failed_tasks: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


@dataclass
class ServiceEvent:
    """A service event message (AWS keeps the newest 100)."""

    id: str
    message: str
    created_at: float = field(default_factory=time.time)


@dataclass
class Service:
    """A replica service: a desired count of tasks of one task definition."""

    name: str
    arn: str
    cluster: str
    task_definition: TaskDefinition
    desired_count: int
    launch_type: str
    maximum_percent: int = 200
    minimum_healthy_percent: int = 100
    network_configuration: dict[str, Any] | None = None
    status: str = "ACTIVE"
    deployments: list[Deployment] = field(default_factory=list)
    events: list[ServiceEvent] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    health_check_grace_period_seconds: int | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    deleted_at: float | None = None
    # CreateService loadBalancers, echoed; their presence gives the tasks a deregistration delay.
    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    # Restart backoff after tasks crash or fail to start (ECS throttles restarts too).
    consecutive_failures: int = 0
    launch_not_before: float = 0.0

    @property
    def primary(self) -> Deployment:
        return self.deployments[0]
