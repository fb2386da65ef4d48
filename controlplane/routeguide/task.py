"""Who this route guide process is and where it listens, as the local ECS tells it."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.routeguide.loopback import is_loopback_host


class BindError(ValueError):
    """The host or port the server was told to bind is not acceptable."""


@dataclass(frozen=True)
class TaskIdentity:
    """The ECS task and container this process runs as; copied into every reply."""

    task_id: str
    task_arn: str
    container_name: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaskIdentity:
        """From ``ECS_TASK_ID``, ``ECS_TASK_ARN``, ``ECS_CONTAINER_NAME``; hostname-based fallbacks."""
        env = os.environ if env is None else env
        # Several processes share one hostname on a laptop, so the pid keeps the fallback unique.
        task_id = env.get("ECS_TASK_ID") or f"{socket.gethostname()}-{os.getpid()}"
        return cls(
            task_id=task_id,
            task_arn=env.get("ECS_TASK_ARN") or f"arn:aws:ecs:local:000000000000:task/local/{task_id}",
            container_name=env.get("ECS_CONTAINER_NAME") or "routeguide",
        )


@dataclass(frozen=True)
class BindAddress:
    """Host and port to listen on; port 0 means any free port."""

    host: str
    port: int

    @classmethod
    def resolve(cls, container_port: int, env: Mapping[str, str] | None = None, *,
                allow_non_loopback: bool = False) -> BindAddress:
        """Host from ``LOCAL_ECS_HOST``; port from ``LOCAL_ECS_PORT_<container_port>``, else the container port."""
        env = os.environ if env is None else env
        if not 0 <= container_port < 65536:
            raise BindError(f"--port {container_port}: expected a port 0-65535")
        host = env.get("LOCAL_ECS_HOST") or "127.0.0.1"
        if not allow_non_loopback and not is_loopback_host(host):
            raise BindError(f'LOCAL_ECS_HOST="{host}": expected an address in 127.0.0.0/8 '
                            "(pass --allow-non-loopback to bind elsewhere)")
        port_var = f"LOCAL_ECS_PORT_{container_port}"
        raw_port = env.get(port_var)
        if raw_port is None or raw_port.strip() == "":
            return cls(host, container_port)
        try:
            port = int(raw_port)
        except ValueError:
            raise BindError(f'{port_var}="{raw_port}": expected a port 0-65535') from None
        if not 0 <= port < 65536:
            raise BindError(f'{port_var}="{raw_port}": expected a port 0-65535')
        return cls(host, port)
