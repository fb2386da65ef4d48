"""A container definition made runnable on this machine: port bindings, environment, stop timeout."""

from __future__ import annotations

import os
from typing import Any

from controlplane.localecs import model
from controlplane.localecs.addresses import HostPortAllocator
from controlplane.localecs.model import Arns, Container, PortBinding, Task

IPV6_BINDING_ORDERS = ("after", "before", "none")


class ContainerFactory:
    """Builds a task's containers; allocates dynamic host ports for bridge tasks."""

    def __init__(self, arns: Arns, host_ports: HostPortAllocator, *, ipv6_bindings: str, default_stop_timeout_seconds: float) -> None:
        if ipv6_bindings not in IPV6_BINDING_ORDERS:
            raise ValueError(f"ipv6_bindings={ipv6_bindings!r}: expected one of {', '.join(IPV6_BINDING_ORDERS)}")
        self._arns = arns
        self._host_ports = host_ports
        # Where Docker's "::" binding of a bridge port goes: after the 0.0.0.0 one, before it, or none.
        self._ipv6_bindings = ipv6_bindings
        self._default_stop_timeout = default_stop_timeout_seconds

    def build(self, task: Task, definition: dict[str, Any], overrides: dict[str, Any]) -> Container:
        """The container ``definition`` of ``task``, with its RunTask ``overrides`` applied."""
        name = definition["name"]
        override: dict[str, Any] = next((o for o in overrides.get("containerOverrides", []) if o.get("name") == name), {})
        bindings = [b for mapping in definition.get("portMappings", []) for b in self._bindings(task, mapping)]
        environment = dict(os.environ)
        for pair in list(definition.get("environment", [])) + list(override.get("environment", [])):
            environment[str(pair["name"])] = str(pair.get("value", ""))
        environment.update(
            {
                "ECS_TASK_ARN": task.arn,
                "ECS_TASK_ID": task.id,
                "ECS_CLUSTER": task.cluster,
                "ECS_CONTAINER_NAME": name,
                "LOCAL_ECS_HOST": task.host_address,
            }
        )
        for binding in bindings:
            if binding.bind_ip == model.IPV4_ANY:
                environment[f"LOCAL_ECS_PORT_{binding.container_port}"] = str(binding.host_port)
        stop_timeout = definition.get("stopTimeout")
        return Container(
            name=name,
            arn=self._arns.container(task.cluster, task.id, model.new_uuid()),
            image=str(definition.get("image", "")),
            essential=bool(definition.get("essential", True)),
            command=[str(a) for a in (override.get("command") or definition.get("command") or [])],
            environment=environment,
            health_check=definition.get("healthCheck"),
            stop_timeout=float(stop_timeout if stop_timeout is not None else self._default_stop_timeout),
            bindings=bindings,
        )

    def _bindings(self, task: Task, mapping: dict[str, Any]) -> list[PortBinding]:
        container_port = int(mapping["containerPort"])
        protocol = mapping.get("protocol", "tcp")
        host_port = int(mapping.get("hostPort") or 0)
        if task.network_mode in ("awsvpc", "host"):
            return [PortBinding(container_port, container_port, protocol)]
        dynamic = not host_port
        ipv4 = PortBinding(container_port, host_port or self._host_ports.acquire(task.host_address), protocol, dynamic=dynamic)
        if self._ipv6_bindings == "none":
            return [ipv4]
        # Docker publishes the port on :: too; a dynamic one gets its own host port
        # (moby#42375), which is reserved here and on which nothing listens.
        ipv6 = PortBinding(
            container_port,
            self._host_ports.acquire(task.host_address) if dynamic else host_port,
            protocol,
            dynamic=dynamic,
            bind_ip=model.IPV6_ANY,
        )
        return [ipv6, ipv4] if self._ipv6_bindings == "before" else [ipv4, ipv6]

    def release(self, task: Task) -> None:
        """Give back the dynamic host ports of a task whose processes are gone."""
        for container in task.containers:
            for binding in container.bindings:
                if binding.dynamic:
                    self._host_ports.release(task.host_address, binding.host_port)
