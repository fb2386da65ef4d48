"""When discovery reads a cluster next, from what its last view shows. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from controlplane.discovery.state import ClusterState, Task, TaskDefinition

STARTING_STATUSES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})


@dataclass(frozen=True, slots=True)
class Debounce:
    """Wait this long without a new event before applying a burst, but never longer than `max`."""

    quiet: float = 0.1
    max: float = 1.0


@dataclass(frozen=True, slots=True)
class Cadence:
    """Discovery's timing. Defaults are the product's (`controlplane serve`)."""

    # Polling: seconds between full reads. Events: retry pace while something fails.
    poll_interval: float = 5.0
    # Events: seconds between full reads.
    resync_interval: float = 300.0
    # Polling: seconds between full reads of a cluster while a deployment is in progress there
    # (tasks starting, or one service's tasks started by more than one deployment).
    deployment_poll_interval: float = 1.0
    # Seconds between describes of the tasks waiting for a first HEALTHY (and suspects).
    health_refresh: float = 2.0
    # Events: seconds between describes of every health-checked task once all are HEALTHY.
    health_refresh_steady: float = 30.0
    debounce: Debounce = field(default_factory=Debounce)
    # Every periodic read waits its interval x a random factor within 1 +- jitter: replicas that
    # started together drift apart instead of reading ECS in step.
    jitter: float = 0.0

    def jittered(self, seconds: float, draw: float) -> float:
        """`seconds` spread by `draw`, a random number within [-1, 1]."""
        return seconds * (1.0 + self.jitter * draw)


def _awaiting_health(task: Task, definition: TaskDefinition | None) -> bool:
    if definition is None or task.last_status != "RUNNING" or task.desired_status != "RUNNING":
        return False
    return any(c.health_check and task.container_health.get(c.name) != "HEALTHY" for c in definition.containers)


def awaiting_health(state: ClusterState) -> int:
    """Tasks running with a health-checked container that has not reported HEALTHY yet."""
    return sum(_awaiting_health(t, state.task_definitions.get(t.task_definition_arn)) for t in state.tasks)


def health_checked(state: ClusterState) -> int:
    """Running, wanted tasks with at least one health-checked container."""
    return sum(
        1
        for t in state.tasks
        if t.last_status == "RUNNING"
        and t.desired_status == "RUNNING"
        and (d := state.task_definitions.get(t.task_definition_arn)) is not None
        and d.health_checked
    )


def deployment_in_progress(tasks: Iterable[Task]) -> bool:
    """Tasks are starting, or one service's wanted tasks come from more than one deployment
    (ECS's startedBy is the deployment id): old tasks may get SIGTERM any moment."""
    started_by: dict[str, set[str]] = {}
    for task in tasks:
        if task.desired_status != "RUNNING":
            continue
        if task.last_status in STARTING_STATUSES:
            return True
        if task.service_name and task.started_by:
            started_by.setdefault(task.service_name, set()).add(task.started_by)
    return any(len(deployments) > 1 for deployments in started_by.values())


def poll_delay(state: ClusterState | None, cadence: Cadence) -> float:
    """Polling mode: seconds until the next full read of a cluster whose last view is `state`."""
    if state is None:
        return cadence.poll_interval
    delay = cadence.poll_interval
    if deployment_in_progress(state.tasks):
        delay = min(delay, cadence.deployment_poll_interval)
    if awaiting_health(state):
        delay = min(delay, cadence.health_refresh)
    return delay


def health_refresh_delay(state: ClusterState | None, suspects: int, cadence: Cadence) -> float | None:
    """Event mode: seconds until the next health refresh of a cluster, or None when none is needed."""
    if suspects or (state is not None and awaiting_health(state)):
        return cadence.health_refresh
    if state is not None and health_checked(state):
        return cadence.health_refresh_steady
    return None
