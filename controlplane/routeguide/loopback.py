"""Loopback-only address checks shared by the route guide and the demo balancer.

Tests, demos and benchmarks may only dial 127.0.0.0/8 (and ::1), so every
address we bind or dial goes through these checks first.
"""

from __future__ import annotations

import ipaddress


class NotLoopbackError(ValueError):
    """An address outside 127.0.0.0/8 (or ::1) where only loopback is allowed."""


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, IPv4 literals in 127.0.0.0/8 and ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_loopback_host(host: str, *, what: str = "address") -> str:
    """Return ``host`` unchanged, or raise NotLoopbackError."""
    if not is_loopback_host(host):
        raise NotLoopbackError(f"{what} {host!r} is not a loopback address: expected 127.0.0.0/8, ::1 or localhost")
    return host


def split_host_port(target: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into host and port, validating the port."""
    host, sep, port_text = target.rpartition(":")
    if not sep or not host:
        raise ValueError(f"target {target!r}: expected host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"target {target!r}: port {port_text!r} is not an integer") from None
    if not 0 < port < 65536:
        raise ValueError(f"target {target!r}: port {port} is outside 1-65535")
    return host.strip("[]"), port


def require_loopback_target(target: str) -> tuple[str, int]:
    """Parse ``host:port`` and require a loopback host; raise ValueError otherwise."""
    host, port = split_host_port(target)
    require_loopback_host(host, what=f"target {target!r}: host")
    return host, port


def join_host_port(host: str, port: int) -> str:
    """Format ``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
