"""Replica services: their deployments, their event messages, and applying the scheduler's plans."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import structlog

from controlplane.localecs import model
from controlplane.localecs.clusters import Clusters, name_from_ref
from controlplane.localecs.errors import InvalidParameterException, ServiceNotActiveException, ServiceNotFoundException
from controlplane.localecs.model import Arns, Cluster, Deployment, Service, ServiceEvent, Task, TaskDefinition
from controlplane.localecs.scheduler import AWS_HEALTHY_AFTER_RUNNING_SECONDS, plan_service
from controlplane.localecs.tasks import Tasks, default_launch_type

MAX_SERVICE_EVENTS = 100
# A task that ran this long before failing does not count towards the restart backoff.
RESTART_BACKOFF_RESET_SECONDS = 10.0
RESTART_BACKOFF_MAX_SECONDS = 10.0


def checked_load_balancer(balancer: dict[str, Any], definition: TaskDefinition) -> dict[str, Any]:
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
        raise InvalidParameterException(f"The container {name} did not have a container port {port} defined.")
    return {k: balancer[k] for k in ("targetGroupArn", "loadBalancerName", "containerName", "containerPort") if k in balancer}


class Services:
    """Every service by (cluster, name); ``reconcile`` converges each on its deployments."""

    def __init__(
        self,
        lock: threading.RLock,
        arns: Arns,
        clusters: Clusters,
        tasks: Tasks,
        closing: threading.Event,
        *,
        healthy_after_running_seconds: float = AWS_HEALTHY_AFTER_RUNNING_SECONDS,
    ) -> None:
        self._lock = lock
        # How long a new task without health checks runs before it counts as healthy (AWS: 40 s).
        self._healthy_after_running_seconds = healthy_after_running_seconds
        self._closing = closing
        self._arns = arns
        self._clusters = clusters
        self._tasks = tasks
        self._services: dict[tuple[str, str], Service] = {}
        self._deployment_ids = itertools.count(int(time.time() * 1000) % 10**12 * 10**6)
        self._log = structlog.get_logger()

    # --- the API ------------------------------------------------------------------------

    def create(
        self,
        cluster: Cluster,
        name: str,
        definition: TaskDefinition,
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
        if desired_count < 0:
            raise InvalidParameterException("desiredCount must be >= 0.")
        balancers = [checked_load_balancer(lb, definition) for lb in load_balancers or []]
        with self._lock:
            existing = self._services.get((cluster.name, name))
            if existing is not None and existing.status != "INACTIVE":
                raise InvalidParameterException("Creation of service was not idempotent.")
            service = Service(
                name=name,
                arn=self._arns.service(cluster.name, name),
                cluster=cluster.name,
                task_definition=definition,
                desired_count=desired_count,
                launch_type=launch_type or default_launch_type(definition),
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
        self.reconcile()
        return service

    def get(self, cluster: Cluster, ref: str) -> Service:
        """A service by name or ARN."""
        service = self.find(cluster, ref)
        if service is None:
            raise ServiceNotFoundException("Service not found.")
        return service

    def find(self, cluster: Cluster, ref: str) -> Service | None:
        """A service by name or ARN, or None."""
        with self._lock:
            return self._services.get((cluster.name, name_from_ref(ref, "service")))

    def of_cluster(self, cluster: Cluster) -> list[Service]:
        """Services of a cluster that are not INACTIVE."""
        with self._lock:
            return [s for (c, _), s in self._services.items() if c == cluster.name and s.status != "INACTIVE"]

    def update(
        self,
        service: Service,
        *,
        desired_count: int | None = None,
        definition: TaskDefinition | None = None,
        force_new_deployment: bool = False,
        maximum_percent: int | None = None,
        minimum_healthy_percent: int | None = None,
        network_configuration: dict[str, Any] | None = None,
    ) -> Service:
        """Change desiredCount and/or roll out a new task definition."""
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
                revision = f"{service.task_definition.family}:{service.task_definition.revision}"
                self._event(service, f"(service {service.name}) has started a deployment of {revision}.")
            service.primary.updated_at = time.time()
        self._log.info(
            "local_ecs.service_updated",
            cluster=service.cluster,
            service=service.name,
            desired_count=service.desired_count,
            task_definition=service.task_definition.arn,
        )
        self.reconcile()
        return service

    def delete(self, service: Service, force: bool = False) -> Service:
        """Delete a service: it goes DRAINING, its tasks stop, then it is INACTIVE."""
        with self._lock:
            if service.status == "INACTIVE":
                raise ServiceNotActiveException("Service was not ACTIVE.")
            if service.desired_count > 0 and not force:
                raise InvalidParameterException("The service cannot be stopped while it is scaled above 0.")
            service.status = "DRAINING"
            service.desired_count = 0
            service.deleted_at = time.time()
        self._log.info("local_ecs.service_deleted", cluster=service.cluster, service=service.name)
        self.reconcile()
        return service

    def _deployment(self, definition: TaskDefinition, desired_count: int) -> Deployment:
        return Deployment(id=f"ecs-svc/{next(self._deployment_ids):019d}", task_definition=definition, desired_count=desired_count)

    def _event(self, service: Service, message: str) -> None:
        service.events.insert(0, ServiceEvent(id=model.new_uuid(), message=message))
        del service.events[MAX_SERVICE_EVENTS:]

    # --- the scheduler --------------------------------------------------------------------

    def reconcile(self) -> None:
        """One scheduler step for every service: start and stop tasks as planned."""
        if self._closing.is_set():
            return
        with self._lock:
            for service in list(self._services.values()):
                if service.status != "INACTIVE":
                    self._reconcile(service)

    def _reconcile(self, service: Service) -> None:
        tasks = self._tasks.of_service(service)
        live = [t for t in tasks if t.desired_status == model.RUNNING]
        plan = plan_service(service, live, time.time(), self._healthy_after_running_seconds)
        for task, reason in plan.stop:
            self._tasks.stop(task, "ServiceSchedulerInitiated", reason)
        if plan.start and time.time() >= service.launch_not_before:
            cluster = self._clusters.get(service.cluster)
            for deployment, count in plan.start:
                self._launch(service, cluster, deployment, count)
        for deployment in plan.finished:
            service.deployments.remove(deployment)
        if service.status == "DRAINING":
            if not any(t.last_status != model.STOPPED for t in tasks):
                service.status = "INACTIVE"
                service.deployments.clear()
            return
        self._complete_rollout(service, tasks)

    def _launch(self, service: Service, cluster: Cluster, deployment: Deployment, count: int) -> None:
        started = []
        for _ in range(count):
            try:
                task = self._tasks.launch(
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
            listed = " ".join(f"(task {i})" for i in started)
            self._event(service, f"(service {service.name}) has started {len(started)} tasks: {listed}.")

    def _complete_rollout(self, service: Service, tasks: list[Task]) -> None:
        primary = service.primary
        running = [
            t for t in tasks
            if t.deployment_id == primary.id and t.desired_status == model.RUNNING and t.last_status == model.RUNNING
        ]
        if len(service.deployments) != 1 or len(running) != service.desired_count:
            return
        others = [t for t in tasks if t.deployment_id != primary.id and t.last_status != model.STOPPED]
        if not others and primary.rollout_state != "COMPLETED":
            primary.rollout_state = "COMPLETED"
            primary.rollout_state_reason = "ECS deployment completed."
            primary.updated_at = time.time()
            self._event(service, f"(service {service.name}) has reached a steady state.")

    def task_finished(self, task: Task) -> None:
        """A service task that crashed or failed to start delays the next launch (ECS throttles restarts)."""
        if not task.service_name or task.stop_code not in ("EssentialContainerExited", "TaskFailedToStart"):
            return
        with self._lock:
            service = self._services.get((task.cluster, task.service_name))
            if service is None:
                return
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
