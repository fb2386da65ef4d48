"""How our gRPC servers listen: one process per port, and a clear error when the port is taken."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Sequence

import grpc

from controlplane.errors import ListenError

# gRPC turns SO_REUSEPORT on by default: a second control plane on the same port would start and
# share the traffic with the first (the two answering alternately). Off, the second one fails.
SERVER_OPTIONS: Sequence[tuple[str, int]] = (("grpc.so_reuseport", 0),)


def is_loopback(address: str) -> bool:
    """Whether `address` (an IP, `[v6]` or `localhost`) is reachable from this host only."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(server: grpc.aio.Server, what: str, address: str, port: int, credentials: grpc.ServerCredentials | None) -> int:
    """Add a listening port to `server`; the bound port, or ListenError naming `what` and the port."""
    ensure_free(what, address, port)
    target = f"{address}:{port}"
    try:
        if credentials is None:
            return server.add_insecure_port(target)
        return server.add_secure_port(target, credentials)
    except RuntimeError as error:  # grpc says only "Failed to bind to address"
        raise ListenError(f"{what} cannot listen on {target}: {error}") from None


def ensure_free(what: str, address: str, port: int) -> None:
    """Raise ListenError when another socket already listens on address:port.

    A probe before gRPC binds: gRPC's own failure logs a multi-line core error and says only
    "Failed to bind"; this says which server and which port, in one line.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(address.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenError(f"{what} address {address!r} does not resolve: {error.strerror}") from None
    for family, kind, proto, _name, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # Like gRPC: a port in TIME_WAIT is free; only a live listener makes it busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise ListenError(
                        f"{what} cannot listen on {address}:{port}: the port is in use (another controlplane serve on this host?)"
                    ) from None
                if error.errno == errno.EADDRNOTAVAIL:
                    raise ListenError(f"{what} address {address} is not an address of this host") from None
                raise ListenError(f"{what} cannot listen on {address}:{port}: {error.strerror}") from None
