"""The task table: launching tasks (placement, addresses, a runner thread each), finding and stopping them."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from controlplane.localecs import model, placement
from controlplane.localecs.addresses import AddressPool
from controlplane.localecs.containers import ContainerFactory
from controlplane.localecs.errors import ClientException, InvalidParameterException
from controlplane.localecs.lifecycle import TaskRunner, Timing
from controlplane.localecs.model import Arns, Cluster, ContainerInstance, Deployment, Service, Task, TaskDefinition

DEFAULT_SUBNET = "subnet-0local00000000000"
ADDRESS_ONLY_LABEL = "local-ecs.address-only"


def address_only(definition: TaskDefinition) -> bool:
    """A task definition whose containers all carry the label ``local-ecs.address-only=true``
    runs without processes (scale runs): it still gets an address and goes through the lifecycle."""
    containers = definition.container_definitions
    return bool(containers) and all(
        str((c.get("dockerLabels") or {}).get(ADDRESS_ONLY_LABEL, "")).lower() == "true" for c in containers
    )


def default_launch_type(definition: TaskDefinition) -> str:
    """The launch type ECS picks when the caller names none."""
    requires = definition.body.get("requiresCompatibilities") or []
    if requires == ["EXTERNAL"]:
        return "EXTERNAL"
    return "FARGATE" if requires == ["FARGATE"] else "EC2"


class Tasks:
    """Every task still known (STOPPED ones until retention expires), with its runner."""

    def __init__(
        self,
        lock: threading.RLock,
        arns: Arns,
        timing: Timing,
        containers: ContainerFactory,
        task_addresses: AddressPool,
        *,
        log_dir: str,
        processes: bool,
        closing: threading.Event,
        on_change: Callable[[Task], None],
        on_finished: Callable[[Task], None],
        zones: tuple[str, ...],
    ) -> None:
        self._lock = lock
        self._arns = arns
        self._timing = timing
        self._containers = containers
        self._task_addresses = task_addresses
        self._log_dir = log_dir
        # False: every task is address-only (lifecycle and address, no processes): scale runs.
        self._processes = processes
        self._closing = closing
        self._on_change = on_change
        self._on_finished = on_finished
        # Fargate tasks spread over these availability zones.
        self._zones = zones
        self._tasks: dict[str, Task] = {}
        # The same tasks by (cluster, group): placement spreads a group's tasks without walking every task.
        self._group_tasks: dict[tuple[str, str], dict[str, Task]] = {}
        self._runners: dict[str, TaskRunner] = {}
        self._log = structlog.get_logger()

    def run(
        self,
        cluster: Cluster,
        definition: TaskDefinition,
        *,
        count: int = 1,
        started_by: str | None = None,
        group: str | None = None,
        launch_type: str | None = None,
        network_configuration: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> list[Task]:
        """RunTask: start ``count`` tasks (1-10) of a task definition."""
        if not 1 <= count <= 10:
            raise InvalidParameterException("Count must be between 1 and 10.")
        if definition.status != "ACTIVE":
            raise ClientException("TaskDefinition is inactive")
        with self._lock:
            return [
                self.launch(
                    cluster,
                    definition,
                    group=group or f"family:{definition.family}",
                    started_by=started_by,
                    launch_type=launch_type,
                    network_configuration=network_configuration,
                    overrides=overrides or {},
                    tags=tags or [],
                )
                for _ in range(count)
            ]

    def launch(
        self,
        cluster: Cluster,
        definition: TaskDefinition,
        *,
        group: str,
        started_by: str | None,
        launch_type: str | None,
        network_configuration: dict[str, Any] | None,
        overrides: dict[str, Any],
        tags: list[dict[str, str]],
        service: Service | None = None,
        deployment: Deployment | None = None,
    ) -> Task:
        """Create a task and start its runner thread. Caller holds the lock."""
        if self._closing.is_set():
            raise ClientException("The local ECS is shutting down.")
        launch_type = launch_type or default_launch_type(definition)
        network_mode = definition.network_mode
        if launch_type == "FARGATE" and network_mode != "awsvpc":
            raise InvalidParameterException(
                "Task definition does not support launch_type FARGATE: networkMode must be awsvpc."
            )
        task_id = model.new_task_id()
        # The group's tasks that still count for placement (not stopping), as ECS's spread strategy sees them.
        group_tasks = self._group_tasks.setdefault((cluster.name, group), {})
        peers = [t for t in group_tasks.values() if t.desired_status == model.RUNNING]
        instance = self._place(cluster, launch_type, peers)
        if network_mode == "awsvpc":
            host_address = self._task_addresses.acquire()
        else:
            assert instance is not None
            host_address = instance.address
        task = Task(
            id=task_id,
            arn=self._arns.task(cluster.name, task_id),
            cluster=cluster.name,
            task_definition=definition,
            group=group,
            launch_type=launch_type,
            network_mode=network_mode,
            host_address=host_address,
            containers=[],
            availability_zone=instance.availability_zone if instance else placement.spread_zone(self._zones, peers),
            started_by=started_by,
            service_name=service.name if service else None,
            deployment_id=deployment.id if deployment else None,
            container_instance=instance,
            overrides=overrides,
            tags=list(tags),
        )
        if network_mode == "awsvpc":
            subnets = ((network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets")
            task.subnet_id = (subnets or [DEFAULT_SUBNET])[0]
            task.eni_id = "eni-" + secrets.token_hex(9)[:17]
            task.mac_address = "0a:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
            task.attachment_id = model.new_uuid()
        task.containers = [self._containers.build(task, c, overrides) for c in definition.container_definitions]
        task.address_only = not self._processes or address_only(definition)
        task.load_balanced = bool(service and service.load_balancers)
        task.on_change = self._on_change
        self._tasks[task.arn] = task
        group_tasks[task.arn] = task
        self._on_change(task)
        runner = TaskRunner(task, self._lock, self._timing, self._log_dir, self._finished)
        self._runners[task.arn] = runner
        runner.start()
        self._log.info(
            "local_ecs.task_launched",
            task_id=task_id,
            cluster=cluster.name,
            task_definition=definition.arn,
            address=host_address,
            group=group,
        )
        return task

    @staticmethod
    def _place(cluster: Cluster, launch_type: str, peers: list[Task]) -> ContainerInstance | None:
        """ECS's default spread over the zones, then the instances, of the right kind; Fargate tasks have none."""
        if launch_type == "FARGATE":
            return None
        # EXTERNAL (ECS Anywhere) tasks go to external instances, EC2 tasks to EC2 ones.
        candidates = [i for i in cluster.instances if i.external == (launch_type == "EXTERNAL")]
        if not candidates:
            raise InvalidParameterException("No Container Instances were found in your cluster.")
        return placement.place_on_instance(candidates, peers)

    def _finished(self, task: Task) -> None:
        """Give back the task's address and dynamic ports once its processes are gone."""
        if task.network_mode == "awsvpc":
            self._task_addresses.release(task.host_address)
        self._containers.release(task)
        self._on_finished(task)

    def get(self, cluster: Cluster, task_ref: str) -> Task:
        """A task by ARN or id within a cluster."""
        task = self.find(cluster, task_ref)
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        return task

    def find(self, cluster: Cluster, task_ref: str) -> Task | None:
        """A task by ARN or id, or None."""
        with self._lock:
            return self._tasks.get(self._arns.task(cluster.name, task_ref.rsplit("/", 1)[-1]))

    def of_cluster(self, cluster: Cluster) -> list[Task]:
        """Every known task of a cluster, oldest first."""
        with self._lock:
            return [t for t in self._tasks.values() if t.cluster == cluster.name]

    def of_service(self, service: Service) -> list[Task]:
        """Every known task of a service."""
        with self._lock:
            return [t for t in self._tasks.values() if t.cluster == service.cluster and t.service_name == service.name]

    def stop(self, task: Task, stop_code: str, reason: str) -> None:
        """desiredStatus STOPPED now; the runner takes the task through the stop sequence."""
        runner = self._runners.get(task.arn)
        if runner is not None:
            runner.request_stop(stop_code, reason)

    def expire_stopped(self, retention_seconds: float) -> None:
        """Forget tasks STOPPED longer than ``retention_seconds`` ago (AWS keeps them about an hour)."""
        cutoff = time.time() - retention_seconds
        with self._lock:
            for arn, task in list(self._tasks.items()):
                if task.last_status == model.STOPPED and task.stopped_at is not None and task.stopped_at < cutoff:
                    del self._tasks[arn]
                    self._runners.pop(arn, None)
                    group_tasks = self._group_tasks.get((task.cluster, task.group))
                    if group_tasks is not None:
                        group_tasks.pop(arn, None)
                        if not group_tasks:
                            del self._group_tasks[(task.cluster, task.group)]

    def stop_all(self, timeout: float) -> int:
        """Stop every task at once (no drain) and wait up to ``timeout`` for them; return how many."""
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.request_stop("UserInitiated", "Local ECS is shutting down", hurry=True)
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.join(max(deadline - time.monotonic(), 0.1))
        return len(runners)
