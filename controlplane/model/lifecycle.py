"""ECS task lifecycle and health -> what Envoy should do with a container's endpoints. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.discovery.state import Task, TaskDefinition
from controlplane.model.mesh import EndpointHealth

# A task on its way down that may still be serving in-flight calls. DEPROVISIONING is not one:
# by then ECS has stopped every container (only the network interface is left to detach).
STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING"})
GONE_STATUSES = frozenset({"DEPROVISIONING", "STOPPED"})


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Which health results take traffic. `serve_unknown`: a health-checked container that has not
    reported yet (UNKNOWN) takes traffic, as it did before health was read from DescribeTasks."""

    serve_unknown: bool = False


def endpoint_health(
    task: Task,
    container: str,
    task_definition: TaskDefinition | None = None,
    policy: HealthPolicy = HealthPolicy(),
) -> EndpointHealth | None:
    """How an endpoint of `container` in `task` is announced, or None to leave it out.

    - Only RUNNING tasks take new calls, and only through containers whose own lastStatus is
      RUNNING (a non-essential container may have stopped in a running task).
    - A container with a health check takes calls once HEALTHY (UNKNOWN means not checked
      yet: announced UNHEALTHY, unless the policy serves UNKNOWN); one without a health check
      once RUNNING.
    - A task ECS is stopping (desiredStatus STOPPED, or DEACTIVATING/STOPPING) drains: no new
      calls, in-flight calls finish. DEPROVISIONING and STOPPED tasks are gone, and tasks not yet
      RUNNING (PROVISIONING, PENDING, ACTIVATING) are left out.
    """
    if task.last_status in GONE_STATUSES:
        return None
    if task.container_last_status(container) not in {"RUNNING", *STOPPING_STATUSES}:
        return None
    if task.desired_status == "STOPPED" or task.last_status in STOPPING_STATUSES:
        return EndpointHealth.DRAINING if task.last_status in STOPPING_STATUSES | {"RUNNING"} else None
    if task.last_status != "RUNNING" or task.container_last_status(container) != "RUNNING":
        return None
    health = task.container_health.get(container, "UNKNOWN")
    if health == "UNHEALTHY":
        return EndpointHealth.UNHEALTHY
    if health == "HEALTHY" or not _health_checked(container, task_definition):
        return EndpointHealth.HEALTHY
    return EndpointHealth.HEALTHY if policy.serve_unknown else EndpointHealth.UNHEALTHY


def _health_checked(container: str, task_definition: TaskDefinition | None) -> bool:
    if task_definition is None:
        return False
    return any(c.name == container and c.health_check for c in task_definition.containers)
