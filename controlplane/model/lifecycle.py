"""ECS task lifecycle -> what Envoy should do with the task's endpoints. Pure."""

from __future__ import annotations

from controlplane.discovery.state import Task
from controlplane.model.mesh import EndpointHealth

# Statuses of a task on its way down: it may still be serving in-flight calls.
STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})


def endpoint_health(task: Task, container: str) -> EndpointHealth | None:
    """How an endpoint of `container` in `task` is announced, or None to leave it out.

    Only RUNNING tasks take new calls. A task that ECS is stopping (desiredStatus STOPPED, or
    DEACTIVATING/STOPPING/DEPROVISIONING) drains: no new calls, in-flight calls finish. Tasks not
    yet RUNNING (PROVISIONING, PENDING, ACTIVATING) and STOPPED tasks are left out.
    """
    if task.last_status == "STOPPED":
        return None
    if task.desired_status == "STOPPED" or task.last_status in STOPPING_STATUSES:
        return EndpointHealth.DRAINING if task.last_status in STOPPING_STATUSES | {"RUNNING"} else None
    if task.last_status != "RUNNING":
        return None
    if task.container_health.get(container) == "UNHEALTHY":
        return EndpointHealth.UNHEALTHY
    return EndpointHealth.HEALTHY
