"""Where a task's container ports can be reached, derived from DescribeTasks shapes. Pure."""

from __future__ import annotations

from typing import Any, Mapping

from controlplane.discovery.state import ContainerEndpoint, TaskDefinition


def eni_address(task: Mapping[str, Any]) -> str | None:
    """The private IPv4 address of an awsvpc task's elastic network interface."""
    for attachment in task.get("attachments", ()):
        if attachment.get("type") != "ElasticNetworkInterface":
            continue
        for detail in attachment.get("details", ()):
            if detail.get("name") == "privateIPv4Address" and detail.get("value"):
                return str(detail["value"])
    # Fargate also reports the address on the container's network interface.
    for container in task.get("containers", ()):
        for interface in container.get("networkInterfaces", ()):
            if interface.get("privateIpv4Address"):
                return str(interface["privateIpv4Address"])
    return None


def container_endpoints(
    task: Mapping[str, Any],
    task_definition: TaskDefinition,
    instance_address: str | None,
) -> tuple[ContainerEndpoint, ...]:
    """Every (container, container port) of a task with the address and port that reach it.

    awsvpc: the task's ENI address and the container port. bridge: the container instance's
    address and the host port bound for the container port (often dynamic). host: the instance
    address and the host port, which equals the container port. Ports that cannot be reached yet
    (no binding reported, no address) are left out.
    """
    mode = task_definition.network_mode
    endpoints: list[ContainerEndpoint] = []
    if mode == "awsvpc":
        address = eni_address(task)
        if address is None:
            return ()
        for container in task_definition.containers:
            for mapping in container.port_mappings:
                endpoints.append(
                    ContainerEndpoint(container.name, mapping.container_port, address, mapping.container_port)
                )
        return tuple(endpoints)

    if instance_address is None:
        return ()
    bindings: dict[tuple[str, int], int] = {}
    for container in task.get("containers", ()):
        for binding in container.get("networkBindings", ()):
            if "containerPort" in binding and "hostPort" in binding:
                bindings.setdefault((container.get("name", ""), int(binding["containerPort"])), int(binding["hostPort"]))
    for container in task_definition.containers:
        for mapping in container.port_mappings:
            host_port = bindings.get((container.name, mapping.container_port))
            if host_port is None and mode == "host":
                host_port = mapping.host_port or mapping.container_port
            if host_port is None:
                continue
            endpoints.append(ContainerEndpoint(container.name, mapping.container_port, instance_address, host_port))
    return tuple(endpoints)
