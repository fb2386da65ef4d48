"""The typed intermediate representation between ECS and Envoy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Protocol(StrEnum):
    """What the task's port speaks. gRPC and HTTP/2 use HTTP/2 upstream; HTTP/1.1 does not."""

    GRPC = "grpc"
    HTTP2 = "http2"
    HTTP1 = "http1"

    @property
    def is_http2(self) -> bool:
        return self in (Protocol.GRPC, Protocol.HTTP2)


class EndpointHealth(StrEnum):
    """What Envoy is told about an endpoint."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    task_arn: str
    cluster: str
    task_definition: str
    health: EndpointHealth
    availability_zone: str = ""

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Which requests reach a service at the edge."""

    hosts: tuple[str, ...] = ("*",)
    path_prefix: str = "/"


@dataclass(frozen=True, slots=True)
class Service:
    """One service as declared by the labels of its task definition."""

    name: str
    protocol: Protocol
    route: RouteMatch
    container_port: int
    declared_by: str  # task definition family:revision whose labels define the settings
    endpoints: tuple[Endpoint, ...]


@dataclass(frozen=True, slots=True)
class ServiceProblem:
    """A validation problem, as data: shown in the log, the metrics and the admin API."""

    service: str | None
    task_definition: str
    container: str
    message: str
    label: str | None = None
    value: str | None = None
    severity: str = "error"  # "error": the declaration is ignored; "warning": it is used anyway


@dataclass(frozen=True, slots=True)
class Mesh:
    """Every service we serve, in name order, and the problems found on the way."""

    services: tuple[Service, ...]
    problems: tuple[ServiceProblem, ...] = ()

    def service(self, name: str) -> Service | None:
        for service in self.services:
            if service.name == name:
                return service
        return None
