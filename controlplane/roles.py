"""Proxy roles: what kind of Envoy (or gRPC client) a node is, which decides the config it receives."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

from controlplane.errors import NodeError

EDGE = "edge"
KNOWN_ROLES = (EDGE,)


@dataclass(frozen=True, slots=True)
class EdgeRole:
    """An edge proxy: one listener in front of every exposed service."""

    listen_address: str = "0.0.0.0"
    listen_port: int = 10000

    @property
    def key(self) -> str:
        return f"edge/{self.listen_address}:{self.listen_port}"


ProxyRole = Union[EdgeRole]


def role_from_metadata(node_id: str, metadata: dict[str, object]) -> ProxyRole:
    """Derive the role from an Envoy node's metadata, as written by `controlplane bootstrap`."""
    role = str(metadata.get("role", EDGE))
    if role != EDGE:
        raise NodeError(
            f"node {node_id!r}: metadata role={role!r} is not supported; expected one of {', '.join(KNOWN_ROLES)}"
        )
    address = str(metadata.get("listen_address", "0.0.0.0"))
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise NodeError(f"node {node_id!r}: metadata listen_address={address!r} is not an IP address") from None
    raw_port = metadata.get("listen_port", 10000)
    # Node metadata is a protobuf Struct: every number arrives as a float.
    if isinstance(raw_port, float) and raw_port.is_integer():
        raw_port = int(raw_port)
    try:
        port = int(raw_port) if isinstance(raw_port, (int, str)) else -1
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise NodeError(f"node {node_id!r}: metadata listen_port={raw_port!r}: expected an integer 1-65535")
    return EdgeRole(listen_address=address, listen_port=port)
