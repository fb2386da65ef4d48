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


def _bind_preference(binding: Mapping[str, Any]) -> int:
    """IPv4 bindings first: the instance address we dial is IPv4. Docker publishes a port on
    0.0.0.0 and on :: as two bindings, and with dynamic ports they may differ (moby#42375)."""
    bind_ip = str(binding.get("bindIP", ""))
    if not bind_ip:
        return 1
    return 2 if ":" in bind_ip else 0


def host_ports(task: Mapping[str, Any]) -> dict[tuple[str, int, str], int]:
    """(container, container port, protocol) -> the host port of its preferred binding."""
    chosen: dict[tuple[str, int, str], tuple[int, int]] = {}
    for container in task.get("containers", ()):
        name = str(container.get("name", ""))
        for binding in container.get("networkBindings", ()) or ():
            if "containerPort" not in binding or "hostPort" not in binding:
                continue
            key = (name, int(binding["containerPort"]), str(binding.get("protocol", "tcp")))
            candidate = (_bind_preference(binding), int(binding["hostPort"]))
            if key not in chosen or candidate[0] < chosen[key][0]:
                chosen[key] = candidate
    return {key: port for key, (_, port) in chosen.items()}


def container_endpoints(
    task: Mapping[str, Any],
    task_definition: TaskDefinition,
    instance_address: str | None,
) -> tuple[ContainerEndpoint, ...]:
    """Every (container, container port) of a task with the address and port that reach it.

    awsvpc: the task's ENI address and the container port. bridge: the container instance's
    address and the host port bound for the container port (often dynamic; the IPv4 binding
    when Docker reports IPv4 and IPv6 ones). host: the instance address and the host port,
    which equals the container port. Ports that cannot be reached yet (no binding reported, no
    address) are left out. One endpoint per container port.
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
    bindings = host_ports(task)
    for container in task_definition.containers:
        for mapping in container.port_mappings:
            host_port = bindings.get((container.name, mapping.container_port, mapping.protocol))
            if host_port is None and mode == "host":
                host_port = mapping.host_port or mapping.container_port
            if host_port is None:
                continue
            endpoints.append(ContainerEndpoint(container.name, mapping.container_port, instance_address, host_port))
    return tuple(endpoints)
