"""Docker labels on a container definition -> a service declaration, or a LabelError. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

from controlplane.discovery.state import ContainerDefinition
from controlplane.errors import LabelError
from controlplane.model.mesh import Protocol, RouteMatch

DEFAULT_PREFIX = "xds."

_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_HOST = re.compile(r"^(\*|(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*)$")
_PATH_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


@dataclass(frozen=True, slots=True)
class ServiceDeclaration:
    """What one container declares about the service it serves."""

    name: str
    container: str
    container_port: int
    protocol: Protocol
    route: RouteMatch


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """One label we read: its name under the prefix, what it expects, and its default."""

    name: str
    expected: str
    default: str | None


LABELS: tuple[LabelSpec, ...] = (
    LabelSpec("service", "a service name: lowercase letters, digits and '-', 1-63 characters", None),
    LabelSpec("port", "an integer 1-65535 that is a containerPort of this container's portMappings", None),
    LabelSpec("protocol", "one of grpc, http2, http1", "grpc"),
    LabelSpec("route.hosts", "a comma-separated list of host names without a port, '*' or '*.domain' wildcards", "*"),
    LabelSpec("route.prefix", "a path prefix starting with '/', e.g. /routeguide.RouteGuide/", "/"),
)
_KNOWN = {spec.name for spec in LABELS}


def unknown_labels(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Labels under our prefix that we do not know (typo protection)."""
    return sorted(key for key in labels if key.startswith(prefix) and key[len(prefix) :] not in _KNOWN)


def parse_container(container: ContainerDefinition, prefix: str = DEFAULT_PREFIX) -> ServiceDeclaration | None:
    """The service a container declares, None when it does not opt in, LabelError when malformed."""
    labels = container.labels
    if prefix + "service" not in labels:
        return None

    def value(name: str) -> str:
        raw = labels.get(prefix + name)
        if raw is None:
            spec = next(spec for spec in LABELS if spec.name == name)
            assert spec.default is not None
            return spec.default
        return raw.strip()

    def check(name: str, parse: Callable[[str], object]) -> object:
        raw = value(name)
        try:
            return parse(raw)
        except (ValueError, TypeError):
            spec = next(spec for spec in LABELS if spec.name == name)
            raise LabelError(
                f"label {prefix}{name}={raw!r}: expected {spec.expected}", label=prefix + name, value=raw
            ) from None

    name = str(check("service", _service_name))
    ports = [mapping.container_port for mapping in container.port_mappings]
    if prefix + "port" in labels:
        port = int(check("port", _port))  # type: ignore[call-overload]
        if port not in ports:
            raw = labels[prefix + "port"]
            raise LabelError(
                f"label {prefix}port={raw!r}: container {container.name!r} has no portMappings entry with "
                f"containerPort {port} (it maps {_list(ports)})",
                label=prefix + "port",
                value=raw,
            )
    elif len(ports) == 1:
        port = ports[0]
    else:
        raise LabelError(
            f"label {prefix}port is missing: container {container.name!r} maps {_list(ports)}; "
            f"set {prefix}port to the containerPort that serves {name!r}",
            label=prefix + "port",
        )
    protocol = Protocol(check("protocol", _protocol))
    hosts = check("route.hosts", _hosts)
    path_prefix = str(check("route.prefix", _path_prefix))
    return ServiceDeclaration(
        name=name,
        container=container.name,
        container_port=port,
        protocol=protocol,
        route=RouteMatch(hosts=hosts, path_prefix=path_prefix),  # type: ignore[arg-type]
    )


def _list(ports: list[int]) -> str:
    return ", ".join(str(port) for port in ports) if ports else "no ports"


def _service_name(raw: str) -> str:
    if not _SERVICE_NAME.match(raw):
        raise ValueError(raw)
    return raw


def _port(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(raw)
    return int(raw)


def _protocol(raw: str) -> Protocol:
    return Protocol(raw.lower())


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(sorted({host.strip().lower() for host in raw.split(",") if host.strip()}))
    if not hosts or not all(_HOST.match(host) for host in hosts):
        raise ValueError(raw)
    return hosts


def _path_prefix(raw: str) -> str:
    if not _PATH_PREFIX.match(raw):
        raise ValueError(raw)
    return raw
