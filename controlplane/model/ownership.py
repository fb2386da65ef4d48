"""Route ownership at the edge: services are admitted in established order; a newcomer may not
take a host and match (or every call of a route) that an established service already serves, nor
exceed the per-service limits. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.model.limits import Charge, route_bytes, virtual_host_bytes
from controlplane.model.mesh import HeaderMatch, Service
from controlplane.model.routing import covers, covers_host, is_routed, is_wildcard, wildcards_covering


@dataclass
class _Host:
    """The own routes of one host admitted so far."""

    by_match: dict[tuple[str, tuple[HeaderMatch, ...]], Service] = field(default_factory=dict)
    by_priority: dict[int, list[Service]] = field(default_factory=dict)
    routes: int = 0
    bytes: int = 0


def _match_key(service: Service) -> tuple[str, tuple[HeaderMatch, ...]]:
    return service.route.path_key, service.route.headers


class EdgeRoutes:
    """The routed services admitted so far, by host."""

    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}

    def blocking(self, service: Service) -> list[tuple[str, Service]]:
        """(host, admitted service) pairs `service` may not join: the same match, or a route whose
        every call `service` would take (a higher priority and a match covering it)."""
        found = []
        for host in service.route.hosts:
            admitted = self._hosts.get(host)
            if admitted is None:
                continue
            same = admitted.by_match.get(_match_key(service))
            if same is not None:
                found.append((host, same))
            for priority, others in admitted.by_priority.items():
                if priority < service.route.priority:
                    found += [(host, other) for other in others if covers(service.route, other.route)]
        return found

    def shadowing(self, service: Service) -> list[tuple[str, Service]]:
        """(host, admitted service) pairs whose route takes every call of `service`'s route there."""
        found = []
        for host in service.route.hosts:
            admitted = self._hosts.get(host)
            if admitted is None:
                continue
            for priority, others in admitted.by_priority.items():
                if priority > service.route.priority:
                    found += [(host, other) for other in others if covers(other.route, service.route)]
        return found

    def charge(self, service: Service) -> Charge:
        """What admitting `service` adds: its own entries, the wildcard routes copied into the new
        hosts it brings, and the copies of its wildcard routes into hosts already there."""
        if not is_routed(service):
            return Charge(hosts=0, routes=0, bytes=0)
        own_bytes = route_bytes(service)
        routes, size = 0, 0
        hosts = set(service.route.hosts)
        for host in service.route.hosts:
            routes, size = routes + 1, size + own_bytes
            if host not in self._hosts:
                size += virtual_host_bytes(host)
                for wildcard in wildcards_covering(host):
                    copied = self._hosts.get(wildcard)
                    if copied is not None:
                        routes, size = routes + copied.routes, size + copied.bytes
            if is_wildcard(host):
                covered = sum(1 for other in self._hosts if other not in hosts and covers_host(host, other))
                routes, size = routes + covered, size + covered * own_bytes
        return Charge(hosts=len(service.route.hosts), routes=routes, bytes=size)

    def admit(self, service: Service) -> None:
        if not is_routed(service):
            return
        own_bytes = route_bytes(service)
        for host in service.route.hosts:
            admitted = self._hosts.setdefault(host, _Host())
            admitted.by_match.setdefault(_match_key(service), service)
            admitted.by_priority.setdefault(service.route.priority, []).append(service)
            admitted.routes += 1
            admitted.bytes += own_bytes
