"""Proxy roles: what kind of Envoy (or gRPC client) a node is, which decides the config it receives."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Union

from controlplane.errors import NodeError

EDGE = "edge"
SIDECAR = "sidecar"
GRPC_CLIENT = "grpc-client"
KNOWN_ROLES = (EDGE, SIDECAR, GRPC_CLIENT)


@dataclass(frozen=True, slots=True)
class EdgeRole:
    """An edge proxy: one listener in front of every exposed service."""

    listen_address: str = "0.0.0.0"
    listen_port: int = 10000
    # The ECS service of the edge fleet itself (its Envoy local cluster), for zone-aware balancing.
    local_service: str | None = None

    @property
    def key(self) -> str:
        local = f",local={self.local_service}" if self.local_service else ""
        return f"edge/{self.listen_address}:{self.listen_port}{local}"


@dataclass(frozen=True, slots=True)
class SidecarRole:
    """The Envoy next to one task of `service`: an outbound listener for exactly the services it
    declares it calls (`xds.upstreams`) and, optionally, an inbound listener in front of the app."""

    service: str
    outbound_address: str = "127.0.0.1"
    outbound_port: int = 15001
    inbound_address: str = "0.0.0.0"
    inbound_port: int | None = None
    app_port: int | None = None
    app_address: str = "127.0.0.1"
    # The sidecar's Envoy has a local cluster (its own service's tasks) for zone-aware balancing.
    zone_aware: bool = False

    @property
    def key(self) -> str:
        inbound = f",in={self.inbound_address}:{self.inbound_port}->{self.app_address}:{self.app_port}" if self.inbound_port else ""
        local = ",local" if self.zone_aware else ""
        return f"sidecar/{self.service}/out={self.outbound_address}:{self.outbound_port}{inbound}{local}"


@dataclass(frozen=True, slots=True)
class GrpcClientRole:
    """A proxyless gRPC client (grpcio with an `xds:///name` target) of `service`."""

    service: str

    @property
    def key(self) -> str:
        return f"grpc-client/{self.service}"


ProxyRole = Union[EdgeRole, SidecarRole, GrpcClientRole]


def _port(node_id: str, metadata: Mapping[str, object], name: str, default: int | None) -> int | None:
    raw = metadata.get(name, default)
    if raw is None:
        return None
    # Node metadata is a protobuf Struct: every number arrives as a float.
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    try:
        port = int(raw) if isinstance(raw, (int, str)) else -1
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise NodeError(f"node {node_id!r}: metadata {name}={raw!r}: expected an integer 1-65535")
    return port


def _address(node_id: str, metadata: Mapping[str, object], name: str, default: str) -> str:
    address = str(metadata.get(name, default))
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise NodeError(f"node {node_id!r}: metadata {name}={address!r} is not an IP address") from None
    return address


def _service(node_id: str, metadata: Mapping[str, object], role: str) -> str:
    service = str(metadata.get("service", "")).strip()
    if not service:
        raise NodeError(f"node {node_id!r}: role {role} needs metadata service=NAME (the ECS service this proxy belongs to)")
    return service


def _local_service(node_id: str, metadata: Mapping[str, object]) -> str | None:
    """metadata local_service: the ECS service whose tasks are this proxy's own fleet (Envoy's local cluster)."""
    raw = metadata.get("local_service")
    if raw is None:
        return None
    local = str(raw).strip()
    if not local:
        raise NodeError(f"node {node_id!r}: metadata local_service is empty; expected the ECS service (xds.service) of this proxy's own fleet")
    return local


def role_from_metadata(node_id: str, metadata: Mapping[str, object]) -> ProxyRole:
    """Derive the role from a node's metadata, as written by `controlplane bootstrap`."""
    role = str(metadata.get("role", EDGE))
    if role == EDGE:
        return EdgeRole(
            listen_address=_address(node_id, metadata, "listen_address", "0.0.0.0"),
            listen_port=_port(node_id, metadata, "listen_port", 10000) or 10000,
            local_service=_local_service(node_id, metadata),
        )
    if role == SIDECAR:
        inbound_port = _port(node_id, metadata, "inbound_port", None)
        app_port = _port(node_id, metadata, "app_port", None)
        if (inbound_port is None) != (app_port is None):
            raise NodeError(f"node {node_id!r}: metadata inbound_port and app_port go together (the inbound listener forwards to the app)")
        service = _service(node_id, metadata, role)
        local = _local_service(node_id, metadata)
        if local is not None and local != service:
            raise NodeError(f"node {node_id!r}: metadata local_service={local!r}: a sidecar's own fleet is its service {service!r}")
        return SidecarRole(
            service=service,
            zone_aware=local is not None,
            outbound_address=_address(node_id, metadata, "outbound_address", "127.0.0.1"),
            outbound_port=_port(node_id, metadata, "outbound_port", 15001) or 15001,
            inbound_address=_address(node_id, metadata, "inbound_address", "0.0.0.0"),
            inbound_port=inbound_port,
            app_port=app_port,
            app_address=_address(node_id, metadata, "app_address", "127.0.0.1"),
        )
    if role == GRPC_CLIENT:
        return GrpcClientRole(service=_service(node_id, metadata, role))
    raise NodeError(
        f"node {node_id!r}: metadata role={role!r} is not supported; expected one of {', '.join(KNOWN_ROLES)}"
    )
