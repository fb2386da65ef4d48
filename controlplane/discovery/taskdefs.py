"""Task definitions by ARN: ECS never changes a revision, so one description serves every task and
every cluster that runs it."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

from controlplane.discovery.state import ContainerDefinition, PortMapping, TaskDefinition

# Revisions kept; the least recently used one is dropped beyond it (and described again if it
# comes back). Far above what one account runs at once.
MAX_TASK_DEFINITIONS = 10_000


def _port_mapping(mapping: Mapping[str, Any]) -> PortMapping:
    return PortMapping(
        container_port=int(mapping["containerPort"]),
        host_port=int(mapping["hostPort"]) if mapping.get("hostPort") else None,
        protocol=str(mapping.get("protocol", "tcp")),
        name=str(mapping["name"]) if mapping.get("name") else None,
        app_protocol=str(mapping["appProtocol"]) if mapping.get("appProtocol") else None,
    )


def parse_task_definition(raw: Mapping[str, Any]) -> TaskDefinition:
    """Build our view of a DescribeTaskDefinition `taskDefinition` shape."""
    containers = []
    for container in raw.get("containerDefinitions", ()):
        health_check = container.get("healthCheck") or {}
        containers.append(
            ContainerDefinition(
                name=str(container["name"]),
                labels=dict(container.get("dockerLabels") or {}),
                port_mappings=tuple(
                    _port_mapping(m) for m in container.get("portMappings", ()) if "containerPort" in m
                ),
                health_check=bool(health_check.get("command")),
            )
        )
    return TaskDefinition(
        arn=str(raw["taskDefinitionArn"]),
        family=str(raw.get("family", "")),
        revision=int(raw.get("revision", 0)),
        network_mode=str(raw.get("networkMode", "bridge")),
        containers=tuple(containers),
    )


class TaskDefinitionCache:
    """Task definitions by ARN, one cache for every cluster. An entry never goes stale; the least
    recently used ones are dropped beyond `max_entries`."""

    def __init__(
        self, describe: Callable[[str], Mapping[str, Any]] | None = None, *, max_entries: int = MAX_TASK_DEFINITIONS
    ) -> None:
        self._describe = describe
        self._max_entries = max_entries
        self._by_arn: OrderedDict[str, TaskDefinition] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_arn)

    def cached(self, arn: str) -> TaskDefinition | None:
        return self._by_arn.get(arn)

    def get(self, arn: str, describe: Callable[[str], Mapping[str, Any]] | None = None) -> TaskDefinition:
        """The task definition, described through ECS (by `describe`, so that the caller can
        count the call) only the first time its ARN is seen."""
        cached = self._by_arn.get(arn)
        if cached is not None:
            self._by_arn.move_to_end(arn)
            return cached
        fetch = describe or self._describe
        if fetch is None:
            raise LookupError(f"task definition {arn} is not cached and no describe function was given")
        cached = parse_task_definition(fetch(arn))
        self._by_arn[arn] = cached
        while len(self._by_arn) > self._max_entries:
            self._by_arn.popitem(last=False)
        return cached
