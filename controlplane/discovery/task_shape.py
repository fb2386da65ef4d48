"""A DescribeTasks task (or an event's task detail) -> our `Task`. Pure."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from controlplane.discovery.addresses import container_endpoints
from controlplane.discovery.state import Task, TaskDefinition

UNKNOWN = "UNKNOWN"


def task_version(raw: Mapping[str, Any]) -> int | None:
    """ECS's per-task `version`: it grows with every state change that ECS reports by an event."""
    version = raw.get("version")
    if isinstance(version, bool):
        return None
    if isinstance(version, int) or (isinstance(version, str) and version.isdigit()):
        return int(version)
    return None


def timestamp(value: Any) -> float | None:
    """Epoch seconds, to the millisecond ECS keeps, from a wire number (`1.5E9`), a datetime, or an
    event's ISO 8601 string: the same instant reads the same whichever way it came (replicas
    compare these)."""
    seconds = _seconds(value)
    return None if seconds is None else round(seconds, 3)


def _seconds(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return None
    return None


def container_health(raw: Mapping[str, Any]) -> dict[str, str]:
    return {str(c.get("name")): str(c.get("healthStatus", UNKNOWN)) for c in raw.get("containers", ())}


def parse_task(
    raw: Mapping[str, Any],
    cluster: str,
    task_definition: TaskDefinition,
    instance_address: str | None,
    *,
    known_health: tuple[str, Mapping[str, str]] | None = None,
) -> Task:
    """Our view of a task. With `known_health` (task health, per-container health) the health
    comes from there instead of `raw`: an event detail has no healthStatus, and a missing field
    must not read as a health result."""
    if known_health is None:
        task_health, health = str(raw.get("healthStatus", UNKNOWN)), container_health(raw)
    else:
        task_health, health = known_health[0], dict(known_health[1])
    return Task(
        arn=str(raw["taskArn"]),
        cluster=cluster,
        task_definition_arn=task_definition.arn,
        group=str(raw.get("group", "")),
        last_status=str(raw.get("lastStatus", "")),
        desired_status=str(raw.get("desiredStatus", "")),
        health_status=task_health,
        availability_zone=str(raw.get("availabilityZone", "")),
        container_health=health,
        endpoints=container_endpoints(raw, task_definition, instance_address),
        started_at=timestamp(raw.get("startedAt")),
        container_status={
            str(c.get("name")): str(c["lastStatus"]) for c in raw.get("containers", ()) if c.get("lastStatus")
        },
        started_by=str(raw.get("startedBy", "")),
    )
