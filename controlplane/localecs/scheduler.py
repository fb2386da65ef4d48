"""The service scheduler: what to start and stop so a service converges on its deployments.

``plan_service`` is pure: it looks at a service and its live tasks and returns a plan;
``LocalEcs`` applies it on every tick of its background thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from controlplane.localecs import model
from controlplane.localecs.model import Deployment, Service, Task


@dataclass
class ServicePlan:
    """Tasks to start per deployment and tasks to stop, with why."""

    start: list[tuple[Deployment, int]] = field(default_factory=list)
    stop: list[tuple[Task, str]] = field(default_factory=list)
    # Deployments with no task left that can be dropped.
    finished: list[Deployment] = field(default_factory=list)


# ECS, for a service without a load balancer: a task counts towards minimumHealthyPercent once
# it is HEALTHY when an essential container has a health check, otherwise 40 s after it reached
# RUNNING (Amazon ECS API reference, DeploymentConfiguration.minimumHealthyPercent).
AWS_HEALTHY_AFTER_RUNNING_SECONDS = 40.0


def _counts_as_healthy(task: Task, service: Service, now: float, healthy_after_running_seconds: float) -> bool:
    if task.last_status != model.RUNNING or task.health_status == model.UNHEALTHY:
        return False
    if any(c.essential and c.health_check for c in task.containers):
        return task.health_status == model.HEALTHY
    if service.load_balancers or task.started_at is None:
        return True
    return now - task.started_at >= healthy_after_running_seconds


def plan_service(
    service: Service, tasks: list[Task], *, now: float | None = None, healthy_after_running_seconds: float = 0.0
) -> ServicePlan:
    """Plan one step of a rolling deployment (ECS deployment controller semantics).

    ``tasks`` are the service's tasks whose desiredStatus is still RUNNING. New tasks of
    the primary deployment start first, within ``maximumPercent``; old tasks stop only
    while the RUNNING count stays at or above ``minimumHealthyPercent``; so during a
    deployment the new tasks are RUNNING before old ones begin stopping.
    """
    plan = ServicePlan()
    at = time.time() if now is None else now

    def _is_healthy_running(task: Task) -> bool:
        return _counts_as_healthy(task, service, at, healthy_after_running_seconds)

    if service.status != "ACTIVE" or not service.deployments:
        plan.stop = [(task, "Service is being deleted") for task in tasks]
        return plan
    primary = service.primary
    desired = service.desired_count
    by_deployment: dict[str, list[Task]] = {}
    for task in tasks:
        by_deployment.setdefault(task.deployment_id or "", []).append(task)
    primary_tasks = by_deployment.get(primary.id, [])
    old_tasks = [t for t in tasks if t.deployment_id != primary.id]

    max_total = math.floor(desired * service.maximum_percent / 100)
    min_healthy = math.ceil(desired * service.minimum_healthy_percent / 100)
    # Never block a deployment entirely: allow at least one task above desired.
    max_total = max(max_total, desired + (1 if old_tasks else 0), desired)

    # UNHEALTHY tasks are replaced, as ECS does for container health checks.
    for task in primary_tasks + old_tasks:
        if task.last_status == model.RUNNING and task.health_status == model.UNHEALTHY:
            plan.stop.append((task, "Task failed container health checks"))
    stopping = {id(t) for t, _ in plan.stop}
    primary_live = [t for t in primary_tasks if id(t) not in stopping]
    old_live = [t for t in old_tasks if id(t) not in stopping]

    # Scale in the primary: stop the not-yet-running ones first, then the newest.
    if len(primary_live) > desired:
        ranked = sorted(primary_live, key=lambda t: (t.last_status == model.RUNNING, -t.created_at))
        for task in ranked[: len(primary_live) - desired]:
            plan.stop.append((task, "Service scaled in"))
            stopping.add(id(task))
        primary_live = [t for t in primary_live if id(t) not in stopping]

    total_live = len(primary_live) + len(old_live)
    need = desired - len(primary_live)
    if need > 0:
        room = max_total - total_live
        count = min(need, max(room, 0))
        if count > 0:
            plan.start.append((primary, count))

    # Old deployments: tasks not running yet can always go; running ones only while enough
    # tasks stay RUNNING.
    healthy = sum(1 for t in primary_live + old_live if _is_healthy_running(t))
    can_stop = healthy - min_healthy
    old_ranked = sorted(old_live, key=lambda t: (_is_healthy_running(t), t.created_at))
    for task in old_ranked:
        if task.last_status != model.RUNNING:
            plan.stop.append((task, "Deployment replaced this task"))
        elif can_stop > 0:
            # A RUNNING task not counted healthy yet is stopped within the same budget, but
            # does not use it up.
            plan.stop.append((task, "Deployment replaced this task"))
            can_stop -= _is_healthy_running(task)

    stopping = {id(t) for t, _ in plan.stop}
    remaining_old_ids = {t.deployment_id for t in old_live if id(t) not in stopping}
    for deployment in service.deployments[1:]:
        if deployment.id not in remaining_old_ids:
            plan.finished.append(deployment)
    return plan
