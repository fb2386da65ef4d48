"""``LocalEcs``: the in-memory ECS model plus the scheduler thread that drives it.

Thread-safe: every public method takes the one ``RLock``; task runner threads take
it for each state change. The API layer (``api_ecs``) calls these methods and renders
the returned objects.
"""

from __future__ import annotations

import itertools
import os
import secrets
import tempfile
import threading
import time
from typing import Any

import structlog

from controlplane.localecs import model, placement
from controlplane.localecs.addresses import AddressPool, HostPortAllocator, InstanceAddressPool
from controlplane.localecs.errors import (
    ClientException,
    ClusterNotFoundException,
    InvalidParameterException,
    ServiceNotActiveException,
    ServiceNotFoundException,
)
from controlplane.localecs.lifecycle import AWS_DEFAULT_STOP_TIMEOUT_SECONDS, TaskRunner, Timing
from controlplane.localecs.model import (
    Arns,
    Cluster,
    Container,
    ContainerInstance,
    Deployment,
    PortBinding,
    Service,
    ServiceEvent,
    Task,
    TaskDefinition,
)
from controlplane.localecs.events import EventStream, task_state_change
from controlplane.localecs.faults import FaultInjector
from controlplane.localecs.scheduler import AWS_HEALTHY_AFTER_RUNNING_SECONDS, plan_service
from controlplane.localecs.sqs import LocalSqs, Queue

TASK_SUBNET_OCTET = 10
INSTANCE_SUBNET_OCTET = 20
DEFAULT_SUBNET = "subnet-0local00000000000"
MAX_SERVICE_EVENTS = 100
# A task that ran this long before failing does not count towards the restart backoff.
RESTART_BACKOFF_RESET_SECONDS = 10.0
RESTART_BACKOFF_MAX_SECONDS = 10.0


ADDRESS_ONLY_LABEL = "local-ecs.address-only"
IPV6_BINDING_ORDERS = ("after", "before", "none")


def _address_only(definition: TaskDefinition) -> bool:
    """A task definition whose containers all carry the label ``local-ecs.address-only=true``
    runs without processes (scale runs): it still gets an address and goes through the lifecycle."""
    containers = definition.container_definitions
    return bool(containers) and all(
        str((c.get("dockerLabels") or {}).get(ADDRESS_ONLY_LABEL, "")).lower() == "true" for c in containers
    )


def _checked_load_balancer(balancer: dict[str, Any], definition: TaskDefinition) -> dict[str, Any]:
    """A CreateService ``loadBalancers`` entry, checked as ECS checks it."""
    if not balancer.get("targetGroupArn") and not balancer.get("loadBalancerName"):
        raise InvalidParameterException("Either targetGroupArn or loadBalancerName must be specified.")
    name = balancer.get("containerName")
    port = balancer.get("containerPort")
    if not name or port is None:
        raise InvalidParameterException("containerName and containerPort are required for a load balancer.")
    container = next((c for c in definition.container_definitions if c.get("name") == name), None)
    if container is None:
        raise InvalidParameterException(f"The container {name} does not exist in the task definition.")
    if not any(int(m.get("containerPort", -1)) == int(port) for m in container.get("portMappings", [])):
        raise InvalidParameterException(
            f"The container {name} did not have a container port {port} defined."
        )
    return {k: balancer[k] for k in ("targetGroupArn", "loadBalancerName", "containerName", "containerPort") if k in balancer}


def _name_from_ref(ref: str, kind: str) -> str:
    """``name`` from either a name or an ARN ``...:kind/name`` / ``...:kind/cluster/name``."""
    if ref.startswith("arn:"):
        resource = ref.split(":", 5)[-1]
        if resource.startswith(kind + "/"):
            return resource.split("/")[-1]
    return ref


class LocalEcs:
    """An ECS control plane whose tasks are local processes on loopback addresses."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        provisioning_seconds: float = 0.2,
        pending_seconds: float = 0.2,
        deactivating_seconds: float = 1.0,
        start_timeout_seconds: float = 10.0,
        default_stop_timeout_seconds: float = AWS_DEFAULT_STOP_TIMEOUT_SECONDS,
        deprovisioning_seconds: float = 0.2,
        drain_every_task: bool = False,
        ipv6_bindings: str = "after",
        stopped_retention_seconds: float = 600.0,
        instances_per_cluster: int = 2,
        zones: tuple[str, ...] | list[str] = (),
        log_dir: str | None = None,
        scheduler_interval_seconds: float = 0.05,
        healthy_after_running_seconds: float = AWS_HEALTHY_AFTER_RUNNING_SECONDS,
        task_address_octet: int = TASK_SUBNET_OCTET,
        instance_address_octet: int = INSTANCE_SUBNET_OCTET,
        external_instances_per_cluster: int = 0,
        processes: bool = True,
        event_queues: tuple[str, ...] | list[str] = (),
        event_duplicate_rate: float = 0.0,
        event_reorder_rate: float = 0.0,
        throttle_rate: float | None = None,
        throttle_burst: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.external_instances_per_cluster = external_instances_per_cluster
        # False: every task is address-only (lifecycle and address, no processes): scale runs.
        self.processes = processes
        self.sqs = LocalSqs(region)
        self.event_stream = EventStream(self.sqs, seed)
        self.faults = FaultInjector(seed)
        if throttle_rate:
            self.faults.throttle(throttle_rate, throttle_burst)
        for name in event_queues:
            self.route_events(name, duplicate_rate=event_duplicate_rate, reorder_rate=event_reorder_rate)
        self.arns = Arns(region=region, account=account_id)
        self.timing = Timing(
            provisioning_seconds=provisioning_seconds,
            pending_seconds=pending_seconds,
            deactivating_seconds=deactivating_seconds,
            start_timeout_seconds=start_timeout_seconds,
            default_stop_timeout_seconds=default_stop_timeout_seconds,
            deprovisioning_seconds=deprovisioning_seconds,
            drain_every_task=drain_every_task,
        )
        if ipv6_bindings not in IPV6_BINDING_ORDERS:
            raise ValueError(f"ipv6_bindings={ipv6_bindings!r}: expected one of {', '.join(IPV6_BINDING_ORDERS)}")
        # Where Docker's "::" binding of a bridge port goes: after the 0.0.0.0 one, before it, or none.
        self.ipv6_bindings = ipv6_bindings
        self.stopped_retention_seconds = stopped_retention_seconds
        self.instances_per_cluster = instances_per_cluster
        # The region's availability zones: container instances take them in turn, Fargate tasks spread over them.
        self.zones = tuple(zones) or tuple(f"{region}{letter}" for letter in "abc")
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="local-ecs-logs-")
        os.makedirs(self.log_dir, exist_ok=True)
        self._lock = threading.RLock()
        # Public so the API layer can render a consistent view of several objects.
        self.lock = self._lock
        self._clusters: dict[str, Cluster] = {}
        self._task_definitions: dict[str, list[TaskDefinition]] = {}
        self._tasks: dict[str, Task] = {}
        # The same tasks by (cluster, group): placement spreads a group's tasks without walking every task.
        self._group_tasks: dict[tuple[str, str], dict[str, Task]] = {}
        self._runners: dict[str, TaskRunner] = {}
        self._services: dict[tuple[str, str], Service] = {}
        # Two local ECS servers on one machine need different octets, or their tasks collide.
        self._task_addresses = AddressPool(task_address_octet)
        self._instance_addresses = InstanceAddressPool(instance_address_octet)
        self._host_ports = HostPortAllocator()
        self._deployment_ids = itertools.count(int(time.time() * 1000) % 10**12 * 10**6)
        self._closed = threading.Event()
        # Public: long polls end early when the local ECS shuts down.
        self.closing = self._closed
        self._scheduler_interval = scheduler_interval_seconds
        self._healthy_after_running_seconds = healthy_after_running_seconds
        self._log = structlog.get_logger()
        self._thread = threading.Thread(target=self._scheduler_loop, name="local-ecs-scheduler", daemon=True)
        self._thread.start()

    # --- clusters ------------------------------------------------------------------

    def create_cluster(self, name: str = "default", tags: list[dict[str, str]] | None = None) -> Cluster:
        """Create a cluster (idempotent, as in AWS) with its container instances."""
        with self._lock:
            existing = self._clusters.get(name)
            if existing is not None:
                return existing
            cluster = Cluster(name=name, arn=self.arns.cluster(name), tags=list(tags or []))
            # EC2 instances first, then ECS Anywhere (EXTERNAL) ones, whose id is an SSM managed instance id.
            kinds = [(False, index) for index in range(self.instances_per_cluster)]
            kinds += [(True, index) for index in range(self.external_instances_per_cluster)]
            for external, index in kinds:
                instance_id = model.new_task_id()
                cluster.instances.append(
                    ContainerInstance(
                        arn=self.arns.container_instance(name, instance_id),
                        id=instance_id,
                        cluster=name,
                        ec2_instance_id=model.new_managed_instance_id() if external else model.new_instance_id(),
                        address=self._instance_addresses.acquire(),
                        availability_zone=self.zones[index % len(self.zones)],
                        external=external,
                    )
                )
            self._clusters[name] = cluster
        self._log.info(
            "local_ecs.cluster_created",
            cluster=name,
            instances=[i.address for i in cluster.instances],
        )
        return cluster

    def cluster(self, ref: str | None) -> Cluster:
        """The cluster named by ``ref`` (name or ARN; None means ``default``)."""
        name = _name_from_ref(ref or "default", "cluster")
        with self._lock:
            cluster = self._clusters.get(name)
        if cluster is None:
            raise ClusterNotFoundException("Cluster not found.")
        return cluster

    def find_cluster(self, ref: str) -> Cluster | None:
        """The cluster named by ``ref``, or None."""
        with self._lock:
            return self._clusters.get(_name_from_ref(ref, "cluster"))

    def clusters(self) -> list[Cluster]:
        """All clusters, oldest first."""
        with self._lock:
            return list(self._clusters.values())

    def all_instances(self) -> list[ContainerInstance]:
        """Every container instance of every cluster (the EC2 view)."""
        with self._lock:
            return [i for c in self._clusters.values() for i in c.instances]

    # --- task definitions -----------------------------------------------------------

    def register_task_definition(self, body: dict[str, Any], tags: list[dict[str, str]] | None = None) -> TaskDefinition:
        """Register the next revision of ``body["family"]``."""
        family = body.get("family")
        if not family:
            raise ClientException("Family is required.")
        containers = body.get("containerDefinitions") or []
        if not containers:
            raise ClientException("Container list cannot be empty.")
        for container in containers:
            if not container.get("name"):
                raise ClientException("Container.name should not be null or empty.")
        network_mode = body.get("networkMode", "bridge")
        if network_mode not in ("bridge", "host", "awsvpc", "none"):
            raise ClientException(f"Network mode {network_mode} is not supported.")
        with self._lock:
            revisions = self._task_definitions.setdefault(family, [])
            revision = len(revisions) + 1
            arn = self.arns.task_definition(family, revision)
            echoed = dict(body)
            echoed["networkMode"] = network_mode
            echoed["containerDefinitions"] = [self._default_container(c, network_mode) for c in containers]
            definition = TaskDefinition(
                arn=arn, family=family, revision=revision, body=echoed, tags=list(tags or [])
            )
            revisions.append(definition)
        self._log.info("local_ecs.task_definition_registered", task_definition=arn)
        return definition

    @staticmethod
    def _default_container(container: dict[str, Any], network_mode: str) -> dict[str, Any]:
        # AWS fills these defaults in on registration and returns them.
        result = dict(container)
        result.setdefault("essential", True)
        result.setdefault("cpu", 0)
        result.setdefault("environment", [])
        result.setdefault("mountPoints", [])
        result.setdefault("volumesFrom", [])
        mappings = []
        for mapping in result.get("portMappings", []):
            mapping = dict(mapping)
            mapping.setdefault("protocol", "tcp")
            if network_mode in ("awsvpc", "host"):
                mapping.setdefault("hostPort", mapping.get("containerPort"))
            mappings.append(mapping)
        result["portMappings"] = mappings
        return result

    def task_definition(self, ref: str) -> TaskDefinition:
        """A task definition by ``family`` (latest ACTIVE), ``family:revision`` or ARN."""
        name = ref.split(":task-definition/", 1)[1] if ":task-definition/" in ref else ref
        family, _, revision = name.partition(":")
        with self._lock:
            revisions = self._task_definitions.get(family, [])
            if revision:
                if revision.isdigit() and 0 < int(revision) <= len(revisions):
                    return revisions[int(revision) - 1]
            else:
                active = [d for d in revisions if d.status == "ACTIVE"]
                if active:
                    return active[-1]
        raise ClientException("Unable to describe task definition.")

    def all_task_definitions(self) -> list[TaskDefinition]:
        """Every revision of every family, in registration order per family."""
        with self._lock:
            return [d for revisions in self._task_definitions.values() for d in revisions]

    def deregister_task_definition(self, ref: str) -> TaskDefinition:
        """Mark a revision INACTIVE; running tasks and services keep using it."""
        if ":" not in ref.split("task-definition/")[-1]:
            raise ClientException("Invalid revision number. Number: ")
        definition = self.task_definition(ref)
        with self._lock:
            definition.status = "INACTIVE"
            definition.deregistered_at = time.time()
        return definition

    # --- tasks ------------------------------------------------------------------------

    def run_task(
        self,
        cluster_ref: str | None,
        task_definition_ref: str,
        *,
        count: int = 1,
        started_by: str | None = None,
        group: str | None = None,
        launch_type: str | None = None,
        network_configuration: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> list[Task]:
        """Start ``count`` tasks (1-10) of a task definition."""
        if not 1 <= count <= 10:
            raise InvalidParameterException("Count must be between 1 and 10.")
        cluster = self.cluster(cluster_ref)
        definition = self.task_definition(task_definition_ref)
        if definition.status != "ACTIVE":
            raise ClientException("TaskDefinition is inactive")
        with self._lock:
            return [
                self._launch(
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

    def _default_launch_type(self, definition: TaskDefinition) -> str:
        requires = definition.body.get("requiresCompatibilities") or []
        if requires == ["EXTERNAL"]:
            return "EXTERNAL"
        return "FARGATE" if requires == ["FARGATE"] else "EC2"

    def _launch(
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
        """Create a task and its runner thread. Caller holds the lock."""
        if self._closed.is_set():
            raise ClientException("The local ECS is shutting down.")
        launch_type = launch_type or self._default_launch_type(definition)
        network_mode = definition.network_mode
        if launch_type == "FARGATE" and network_mode != "awsvpc":
            raise InvalidParameterException(
                "Task definition does not support launch_type FARGATE: networkMode must be awsvpc."
            )
        task_id = model.new_task_id()
        instance: ContainerInstance | None = None
        # The group's tasks that still count for placement (not stopping), as ECS's spread strategy sees them.
        group_tasks = self._group_tasks.setdefault((cluster.name, group), {})
        peers = [t for t in group_tasks.values() if t.desired_status == model.RUNNING]
        if launch_type != "FARGATE":
            # EXTERNAL (ECS Anywhere) tasks go to external instances, EC2 tasks to EC2 ones.
            candidates = [i for i in cluster.instances if i.external == (launch_type == "EXTERNAL")]
            if not candidates:
                raise InvalidParameterException("No Container Instances were found in your cluster.")
            instance = placement.place_on_instance(candidates, peers)
        if network_mode == "awsvpc":
            host_address = self._task_addresses.acquire()
        else:
            assert instance is not None
            host_address = instance.address
        zone = instance.availability_zone if instance else placement.spread_zone(self.zones, peers)
        subnets = ((network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or [
            DEFAULT_SUBNET
        ]
        task = Task(
            id=task_id,
            arn=self.arns.task(cluster.name, task_id),
            cluster=cluster.name,
            task_definition=definition,
            group=group,
            launch_type=launch_type,
            network_mode=network_mode,
            host_address=host_address,
            containers=[],
            availability_zone=zone,
            started_by=started_by,
            service_name=service.name if service else None,
            deployment_id=deployment.id if deployment else None,
            container_instance=instance,
            overrides=overrides,
            tags=list(tags),
        )
        if network_mode == "awsvpc":
            task.subnet_id = subnets[0]
            task.eni_id = "eni-" + secrets.token_hex(9)[:17]
            mac = secrets.token_bytes(5)
            task.mac_address = "0a:" + ":".join(f"{b:02x}" for b in mac)
            task.attachment_id = model.new_uuid()
        task.containers = [self._container(task, c, overrides) for c in definition.container_definitions]
        task.address_only = not self.processes or _address_only(definition)
        task.load_balanced = bool(service and service.load_balancers)
        task.on_change = self._task_changed
        self._tasks[task.arn] = task
        group_tasks[task.arn] = task
        self._task_changed(task)
        runner = TaskRunner(task, self._lock, self.timing, self.log_dir, self._on_task_finished)
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

    # --- events, queues and faults ------------------------------------------------------------

    def _task_changed(self, task: Task) -> None:
        """Emit the task's state change event (called under the lock, after every change)."""
        if not self.event_stream.active:
            return
        from controlplane.localecs.api_ecs import render_task  # the API layer imports us

        self.event_stream.emit(task_state_change(render_task(task), self.region, self.account_id, task.updated_at))

    def route_events(self, queue_name: str, *, duplicate_rate: float = 0.0, reorder_rate: float = 0.0) -> Queue:
        """Deliver every ECS task state change to SQS queue ``queue_name`` (created if missing),
        as an EventBridge rule on ``source: aws.ecs`` with that queue as target would."""
        queue = self.sqs.create_queue(queue_name)
        self.event_stream.route(queue, duplicate_rate=duplicate_rate, reorder_rate=reorder_rate)
        return queue

    def inject_faults(
        self,
        operation: str = "*",
        error: str | None = "ServerException",
        rate: float = 1.0,
        latency: float = 0.0,
        duration: float | None = None,
        service: str = "ecs",
    ) -> int:
        """Fail (``error`` with probability ``rate``) and/or delay (``latency`` s) calls to
        ``service``'s ``operation`` ("*" = all) for ``duration`` seconds or until cleared."""
        return self.faults.inject(operation=operation, error=error, rate=rate, latency=latency, duration=duration, service=service)

    def clear_faults(self, fault_id: int | None = None) -> None:
        self.faults.clear(fault_id)

    def throttle(self, rate: float | None, burst: float | None = None, operation: str = "*", service: str = "ecs") -> None:
        """ThrottlingException above ``rate`` calls/s per operation (None lifts the limit)."""
        self.faults.throttle(rate, burst, operation=operation, service=service)

    def _container(self, task: Task, definition: dict[str, Any], overrides: dict[str, Any]) -> Container:
        name = definition["name"]
        override: dict[str, Any] = next(
            (o for o in overrides.get("containerOverrides", []) if o.get("name") == name), {}
        )
        bindings: list[PortBinding] = []
        for mapping in definition.get("portMappings", []):
            container_port = int(mapping["containerPort"])
            protocol = mapping.get("protocol", "tcp")
            host_port = int(mapping.get("hostPort") or 0)
            if task.network_mode in ("awsvpc", "host"):
                bindings.append(PortBinding(container_port, container_port, protocol))
                continue
            dynamic = not host_port
            ipv4 = PortBinding(
                container_port, host_port or self._host_ports.acquire(task.host_address), protocol, dynamic=dynamic
            )
            if self.ipv6_bindings == "none":
                bindings.append(ipv4)
                continue
            # Docker publishes the port on :: too; a dynamic one gets its own host port
            # (moby#42375), which is reserved here and on which nothing listens.
            ipv6 = PortBinding(
                container_port,
                self._host_ports.acquire(task.host_address) if dynamic else host_port,
                protocol,
                dynamic=dynamic,
                bind_ip=model.IPV6_ANY,
            )
            bindings += [ipv6, ipv4] if self.ipv6_bindings == "before" else [ipv4, ipv6]
        environment = dict(os.environ)
        for pair in list(definition.get("environment", [])) + list(override.get("environment", [])):
            environment[str(pair["name"])] = str(pair.get("value", ""))
        environment.update(
            {
                "ECS_TASK_ARN": task.arn,
                "ECS_TASK_ID": task.id,
                "ECS_CLUSTER": task.cluster,
                "ECS_CONTAINER_NAME": name,
                "LOCAL_ECS_HOST": task.host_address,
            }
        )
        for binding in bindings:
            if binding.bind_ip == model.IPV4_ANY:
                environment[f"LOCAL_ECS_PORT_{binding.container_port}"] = str(binding.host_port)
        stop_timeout = definition.get("stopTimeout")
        return Container(
            name=name,
            arn=self.arns.container(task.cluster, task.id, model.new_uuid()),
            image=str(definition.get("image", "")),
            essential=bool(definition.get("essential", True)),
            command=[str(a) for a in (override.get("command") or definition.get("command") or [])],
            environment=environment,
            health_check=definition.get("healthCheck"),
            stop_timeout=float(stop_timeout if stop_timeout is not None else self.timing.default_stop_timeout_seconds),
            bindings=bindings,
        )

    def _on_task_finished(self, task: Task) -> None:
        """Give back the task's address and dynamic ports once its processes are gone."""
        if task.network_mode == "awsvpc":
            self._task_addresses.release(task.host_address)
        for container in task.containers:
            for binding in container.bindings:
                if binding.dynamic:
                    self._host_ports.release(task.host_address, binding.host_port)
        with self._lock:
            if task.service_name and task.stop_code in ("EssentialContainerExited", "TaskFailedToStart"):
                service = self._services.get((task.cluster, task.service_name))
                if service is not None:
                    now = time.time()
                    if task.started_at is not None and now - task.started_at > RESTART_BACKOFF_RESET_SECONDS:
                        service.consecutive_failures = 0
                    service.consecutive_failures += 1
                    delay = min(0.25 * 2 ** (service.consecutive_failures - 1), RESTART_BACKOFF_MAX_SECONDS)
                    service.launch_not_before = now + delay
                    for deployment in service.deployments:
                        if deployment.id == task.deployment_id:
                            deployment.failed_tasks += 1
                    self._event(service, f"(service {service.name}) has stopped 1 running tasks: (task {task.id}).")

    def task(self, cluster_ref: str | None, task_ref: str) -> Task:
        """A task by ARN or id within a cluster."""
        cluster = self.cluster(cluster_ref)
        task_id = task_ref.rsplit("/", 1)[-1]
        with self._lock:
            task = self._tasks.get(self.arns.task(cluster.name, task_id))
        if task is None:
            raise InvalidParameterException("The referenced task was not found.")
        return task

    def find_task(self, cluster: Cluster, task_ref: str) -> Task | None:
        """A task by ARN or id, or None."""
        with self._lock:
            return self._tasks.get(self.arns.task(cluster.name, task_ref.rsplit("/", 1)[-1]))

    def tasks(self, cluster: Cluster) -> list[Task]:
        """Every task of a cluster still known (STOPPED ones until retention expires), oldest first."""
        with self._lock:
            return [t for t in self._tasks.values() if t.cluster == cluster.name]

    def stop_task(self, cluster_ref: str | None, task_ref: str, reason: str | None = None) -> Task:
        """Stop a task (StopTask): desiredStatus STOPPED now, processes after the drain delay."""
        task = self.task(cluster_ref, task_ref)
        self._stop(task, "UserInitiated", reason or "Task stopped by user")
        return task

    def _stop(self, task: Task, stop_code: str, reason: str) -> None:
        runner = self._runners.get(task.arn)
        if runner is not None:
            runner.request_stop(stop_code, reason)

    # --- services ---------------------------------------------------------------------

    def create_service(
        self,
        cluster_ref: str | None,
        name: str,
        task_definition_ref: str,
        *,
        desired_count: int = 0,
        launch_type: str | None = None,
        network_configuration: dict[str, Any] | None = None,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        health_check_grace_period_seconds: int | None = None,
        tags: list[dict[str, str]] | None = None,
        load_balancers: list[dict[str, Any]] | None = None,
    ) -> Service:
        """Create a REPLICA service; the scheduler starts ``desired_count`` tasks.

        ``load_balancers`` (CreateService ``loadBalancers``) are not real load balancers: they
        give the service's stopping tasks DEACTIVATING and the deregistration delay, as in ECS.
        """
        cluster = self.cluster(cluster_ref)
        definition = self.task_definition(task_definition_ref)
        if desired_count < 0:
            raise InvalidParameterException("desiredCount must be >= 0.")
        balancers = [_checked_load_balancer(lb, definition) for lb in load_balancers or []]
        with self._lock:
            existing = self._services.get((cluster.name, name))
            if existing is not None and existing.status != "INACTIVE":
                raise InvalidParameterException("Creation of service was not idempotent.")
            service = Service(
                name=name,
                arn=self.arns.service(cluster.name, name),
                cluster=cluster.name,
                task_definition=definition,
                desired_count=desired_count,
                launch_type=launch_type or self._default_launch_type(definition),
                maximum_percent=200 if maximum_percent is None else maximum_percent,
                minimum_healthy_percent=100 if minimum_healthy_percent is None else minimum_healthy_percent,
                network_configuration=network_configuration,
                health_check_grace_period_seconds=health_check_grace_period_seconds,
                tags=list(tags or []),
                load_balancers=balancers,
            )
            service.deployments.append(self._deployment(definition, desired_count))
            self._services[(cluster.name, name)] = service
        self._log.info("local_ecs.service_created", cluster=cluster.name, service=name, desired_count=desired_count)
        self._reconcile()
        return service

    def _deployment(self, definition: TaskDefinition, desired_count: int) -> Deployment:
        return Deployment(id=f"ecs-svc/{next(self._deployment_ids):019d}", task_definition=definition, desired_count=desired_count)

    def _event(self, service: Service, message: str) -> None:
        service.events.insert(0, ServiceEvent(id=model.new_uuid(), message=message))
        del service.events[MAX_SERVICE_EVENTS:]

    def service(self, cluster_ref: str | None, ref: str) -> Service:
        """A service by name or ARN."""
        cluster = self.cluster(cluster_ref)
        with self._lock:
            service = self._services.get((cluster.name, _name_from_ref(ref, "service")))
        if service is None:
            raise ServiceNotFoundException("Service not found.")
        return service

    def find_service(self, cluster: Cluster, ref: str) -> Service | None:
        """A service by name or ARN, or None."""
        with self._lock:
            return self._services.get((cluster.name, _name_from_ref(ref, "service")))

    def services(self, cluster: Cluster) -> list[Service]:
        """Services of a cluster that are not INACTIVE."""
        with self._lock:
            return [s for (c, _), s in self._services.items() if c == cluster.name and s.status != "INACTIVE"]

    def update_service(
        self,
        cluster_ref: str | None,
        ref: str,
        *,
        desired_count: int | None = None,
        task_definition_ref: str | None = None,
        force_new_deployment: bool = False,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        network_configuration: dict[str, Any] | None = None,
    ) -> Service:
        """Change desiredCount and/or roll out a new task definition."""
        service = self.service(cluster_ref, ref)
        definition = self.task_definition(task_definition_ref) if task_definition_ref else None
        with self._lock:
            if service.status != "ACTIVE":
                raise ServiceNotActiveException("Service was not ACTIVE.")
            if desired_count is not None:
                if desired_count < 0:
                    raise InvalidParameterException("desiredCount must be >= 0.")
                service.desired_count = desired_count
                service.primary.desired_count = desired_count
            if maximum_percent is not None:
                service.maximum_percent = maximum_percent
            if minimum_healthy_percent is not None:
                service.minimum_healthy_percent = minimum_healthy_percent
            if network_configuration is not None:
                service.network_configuration = network_configuration
            new_definition = definition is not None and definition.arn != service.task_definition.arn
            if new_definition or force_new_deployment:
                service.task_definition = definition or service.task_definition
                for old in service.deployments:
                    old.status = "ACTIVE"
                    old.updated_at = time.time()
                service.deployments.insert(0, self._deployment(service.task_definition, service.desired_count))
                self._event(service, f"(service {service.name}) has started a deployment of {service.task_definition.family}:{service.task_definition.revision}.")
            service.primary.updated_at = time.time()
        self._log.info(
            "local_ecs.service_updated",
            cluster=service.cluster,
            service=service.name,
            desired_count=service.desired_count,
            task_definition=service.task_definition.arn,
        )
        self._reconcile()
        return service

    def delete_service(self, cluster_ref: str | None, ref: str, force: bool = False) -> Service:
        """Delete a service: it goes DRAINING, its tasks stop, then it is INACTIVE."""
        service = self.service(cluster_ref, ref)
        with self._lock:
            if service.status == "INACTIVE":
                raise ServiceNotActiveException("Service was not ACTIVE.")
            if service.desired_count > 0 and not force:
                raise InvalidParameterException("The service cannot be stopped while it is scaled above 0.")
            service.status = "DRAINING"
            service.desired_count = 0
            service.deleted_at = time.time()
        self._log.info("local_ecs.service_deleted", cluster=service.cluster, service=service.name)
        self._reconcile()
        return service

    # --- the scheduler loop ---------------------------------------------------------------

    def _scheduler_loop(self) -> None:
        while not self._closed.wait(self._scheduler_interval):
            try:
                self._reconcile()
                self._expire_stopped()
                self.event_stream.flush(older_than=0.2)
            except Exception:  # keep scheduling whatever one tick hit
                self._log.exception("local_ecs.scheduler_tick_failed")

    def _reconcile(self) -> None:
        if self._closed.is_set():
            return
        with self._lock:
            for service in list(self._services.values()):
                if service.status == "INACTIVE":
                    continue
                self._reconcile_service(service)

    def _reconcile_service(self, service: Service) -> None:
        tasks = [t for t in self._tasks.values() if t.cluster == service.cluster and t.service_name == service.name]
        live = [t for t in tasks if t.desired_status == model.RUNNING]
        plan = plan_service(service, live, healthy_after_running_seconds=self._healthy_after_running_seconds)
        cluster = self._clusters[service.cluster]
        for task, reason in plan.stop:
            self._stop(task, "ServiceSchedulerInitiated", reason)
        if plan.start and time.time() < service.launch_not_before:
            plan.start = []
        for deployment, count in plan.start:
            started = []
            for _ in range(count):
                try:
                    task = self._launch(
                        cluster,
                        deployment.task_definition,
                        group=f"service:{service.name}",
                        started_by=deployment.id,
                        launch_type=service.launch_type,
                        network_configuration=service.network_configuration,
                        overrides={},
                        tags=[],
                        service=service,
                        deployment=deployment,
                    )
                except Exception as exc:  # e.g. address exhaustion: report, retry next tick
                    self._log.warning("local_ecs.service_launch_failed", service=service.name, error=str(exc))
                    break
                started.append(task.id)
            if started:
                self._event(service, f"(service {service.name}) has started {len(started)} tasks: {' '.join('(task ' + i + ')' for i in started)}.")
        for deployment in plan.finished:
            service.deployments.remove(deployment)
        if service.status == "DRAINING":
            if not any(t.last_status != model.STOPPED for t in tasks):
                service.status = "INACTIVE"
                service.deployments.clear()
            return
        primary = service.primary
        running = [t for t in tasks if t.deployment_id == primary.id and t.desired_status == model.RUNNING and t.last_status == model.RUNNING]
        if len(service.deployments) == 1 and len(running) == service.desired_count:
            others = [t for t in tasks if t.deployment_id != primary.id and t.last_status != model.STOPPED]
            if not others and primary.rollout_state != "COMPLETED":
                primary.rollout_state = "COMPLETED"
                primary.rollout_state_reason = "ECS deployment completed."
                primary.updated_at = time.time()
                self._event(service, f"(service {service.name}) has reached a steady state.")
        elif primary.rollout_state == "COMPLETED" and len(running) != service.desired_count:
            # A scale change or a replacement is a new rollout of the same deployment.
            pass

    def _expire_stopped(self) -> None:
        cutoff = time.time() - self.stopped_retention_seconds
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

    # --- counts used by the API layer --------------------------------------------------------

    def counts(self, tasks: list[Task]) -> tuple[int, int]:
        """(running, pending) among tasks whose desiredStatus is RUNNING, as AWS counts them."""
        running = sum(1 for t in tasks if t.last_status == model.RUNNING and t.desired_status == model.RUNNING)
        pending = sum(1 for t in tasks if t.last_status in (model.PROVISIONING, model.PENDING, model.ACTIVATING) and t.desired_status == model.RUNNING)
        return running, pending

    def service_tasks(self, service: Service) -> list[Task]:
        """Every known task of a service."""
        with self._lock:
            return [t for t in self._tasks.values() if t.cluster == service.cluster and t.service_name == service.name]

    # --- shutdown -------------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Stop every task (SIGTERM, then SIGKILL after its stopTimeout) and wait for them."""
        if self._closed.is_set():
            return
        with self._lock:
            # Under the lock: no request can launch a task after this point.
            self._closed.set()
        self.sqs.stop_waiters()
        self._thread.join(timeout=5)
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.request_stop("UserInitiated", "Local ECS is shutting down", hurry=True)
        deadline = time.monotonic() + timeout
        for runner in runners:
            runner.join(max(deadline - time.monotonic(), 0.1))
        self._log.info("local_ecs.closed", tasks=len(runners))

    def __enter__(self) -> LocalEcs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
