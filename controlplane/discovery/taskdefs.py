"""Caches of things ECS will not change under us: task definitions by ARN, instances' addresses."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from controlplane.discovery.state import ContainerDefinition, PortMapping, TaskDefinition


def parse_task_definition(raw: Mapping[str, Any]) -> TaskDefinition:
    """Build our view of a DescribeTaskDefinition `taskDefinition` shape."""
    containers = []
    for container in raw.get("containerDefinitions", ()):
        mappings = tuple(
            PortMapping(
                container_port=int(mapping["containerPort"]),
                host_port=int(mapping["hostPort"]) if mapping.get("hostPort") else None,
                protocol=str(mapping.get("protocol", "tcp")),
            )
            for mapping in container.get("portMappings", ())
            if "containerPort" in mapping
        )
        containers.append(
            ContainerDefinition(
                name=str(container["name"]),
                labels=dict(container.get("dockerLabels") or {}),
                port_mappings=mappings,
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
    """Task definitions by ARN. A revision never changes, so an entry never expires."""

    def __init__(self, describe: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        self._describe = describe
        self._by_arn: dict[str, TaskDefinition] = {}

    def __len__(self) -> int:
        return len(self._by_arn)

    def get(self, arn: str, describe: Callable[[str], Mapping[str, Any]] | None = None) -> TaskDefinition:
        """The task definition, described through ECS (by `describe`, so that the caller can
        count the call) only the first time its ARN is seen."""
        cached = self._by_arn.get(arn)
        if cached is None:
            fetch = describe or self._describe
            if fetch is None:
                raise LookupError(f"task definition {arn} is not cached and no describe function was given")
            cached = parse_task_definition(fetch(arn))
            self._by_arn[arn] = cached
        return cached
