"""The service scheduler: what to start and stop so a service converges on its deployments.

``plan_service`` is pure: it looks at a service and its live tasks and returns a plan;
``LocalEcs`` applies it on every tick of its background thread.
"""

from __future__ import annotations

import math
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


# AWS: a task without an essential container health check counts towards minimumHealthyPercent
# 40 s after it reached RUNNING (services without a load balancer).
AWS_HEALTHY_AFTER_RUNNING_SECONDS = 40.0


def counts_as_healthy(task: Task, now: float, healthy_after_running_seconds: float) -> bool:
    """Whether ``task`` counts towards ``minimumHealthyPercent``, as the ECS scheduler counts.

    A task with an essential container health check counts once HEALTHY; one without, once it
    has been RUNNING for ``healthy_after_running_seconds`` (40 s in AWS).
    """
    if task.last_status != model.RUNNING:
        return False
    if any(c.essential and c.health_check for c in task.containers):
        return task.health_status == model.HEALTHY
    return task.started_at is not None and now - task.started_at >= healthy_after_running_seconds


def _running_not_unhealthy(task: Task) -> bool:
    return task.last_status == model.RUNNING and task.health_status != model.UNHEALTHY


def plan_service(
    service: Service, tasks: list[Task], now: float, healthy_after_running_seconds: float = AWS_HEALTHY_AFTER_RUNNING_SECONDS
) -> ServicePlan:
    """Plan one step of a rolling deployment (ECS deployment controller semantics).

    ``tasks`` are the service's tasks whose desiredStatus is still RUNNING. New tasks of
    the primary deployment start first, within ``maximumPercent``; old tasks stop only
    while the tasks that count as healthy (``counts_as_healthy``) stay at or above
    ``minimumHealthyPercent``; so during a deployment the new tasks are RUNNING, and HEALTHY
    or RUNNING for the grace period, before old ones begin stopping.
    """

    def healthy(task: Task) -> bool:
        return counts_as_healthy(task, now, healthy_after_running_seconds)

    plan = ServicePlan()
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
    can_stop = sum(1 for t in primary_live + old_live if healthy(t)) - min_healthy
    old_ranked = sorted(old_live, key=lambda t: (_running_not_unhealthy(t), t.created_at))
    for task in old_ranked:
        if not _running_not_unhealthy(task):
            plan.stop.append((task, "Deployment replaced this task"))
        elif can_stop > 0:
            plan.stop.append((task, "Deployment replaced this task"))
            can_stop -= 1

    stopping = {id(t) for t, _ in plan.stop}
    remaining_old_ids = {t.deployment_id for t in old_live if id(t) not in stopping}
    for deployment in service.deployments[1:]:
        if deployment.id not in remaining_old_ids:
            plan.finished.append(deployment)
    return plan
