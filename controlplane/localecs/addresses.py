"""Loopback address and port allocation for local tasks and container instances.

Every task and instance gets its own 127.x.y.z address so that several tasks can
listen on the same container port at once, as they would on distinct ENIs in a VPC.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import threading

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DYNAMIC_PORT_RANGE = (32768, 60999)


def is_loopback(host: str) -> bool:
    """True if ``host`` is an IPv4 address inside 127.0.0.0/8."""
    try:
        return ipaddress.ip_address(host) in LOOPBACK
    except ValueError:
        return False


class AddressExhausted(RuntimeError):
    """No free address is left in a pool."""


class AddressPool:
    """Hands out distinct addresses ``127.<second>.A.B`` (B in 2..254) and takes them back.

    Addresses are handed out in order and a released address goes to the back of the
    line, so a new task does not reuse the address of a task that just stopped (a
    control plane may still hold the old endpoint for a moment).
    """

    def __init__(self, second_octet: int) -> None:
        self._lock = threading.Lock()
        self._free = [
            f"127.{second_octet}.{a}.{b}" for a in range(0, 256) for b in range(2, 255)
        ]
        self._next = 0
        self._in_use: set[str] = set()
        self._released: list[str] = []

    def acquire(self) -> str:
        """Return an address no one else holds."""
        with self._lock:
            if self._next < len(self._free):
                address = self._free[self._next]
                self._next += 1
            elif self._released:
                address = self._released.pop(0)
            else:
                raise AddressExhausted("no free task address left in the pool")
            self._in_use.add(address)
            return address

    def release(self, address: str) -> None:
        """Give ``address`` back; it is reused only after every fresh address is taken."""
        with self._lock:
            if address in self._in_use:
                self._in_use.discard(address)
                self._released.append(address)


class InstanceAddressPool:
    """Addresses for container instances: ``127.<second>.<n>.1``, n = 1, 2, 3..."""

    def __init__(self, second_octet: int) -> None:
        self._lock = threading.Lock()
        self._second = second_octet
        self._n = 0

    def acquire(self) -> str:
        """Return the next instance address (127.S.1.1, 127.S.2.1, ... then 127.S.1.2, ...)."""
        with self._lock:
            self._n += 1
            if self._n > 254 * 254:
                raise AddressExhausted("no free container instance address left")
            third = (self._n - 1) % 254 + 1
            fourth = (self._n - 1) // 254 + 1
            return f"127.{self._second}.{third}.{fourth}"


def port_is_free(host: str, port: int) -> bool:
    """True if a TCP listener could bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class HostPortAllocator:
    """Dynamic host ports (bridge mode, hostPort 0) per host address, free on that address."""

    def __init__(self, port_range: tuple[int, int] = DYNAMIC_PORT_RANGE) -> None:
        self._lock = threading.Lock()
        self._range = port_range
        self._taken: dict[str, set[int]] = {}
        self._random = random.Random()

    def acquire(self, host: str) -> int:
        """Return a port that is neither handed out by us nor bound by anyone on ``host``."""
        low, high = self._range
        with self._lock:
            taken = self._taken.setdefault(host, set())
            for _ in range(2000):
                port = self._random.randint(low, high)
                if port not in taken and port_is_free(host, port):
                    taken.add(port)
                    return port
        raise AddressExhausted(f"no free dynamic host port on {host}")

    def release(self, host: str, port: int) -> None:
        """Give ``port`` on ``host`` back."""
        with self._lock:
            self._taken.get(host, set()).discard(port)
