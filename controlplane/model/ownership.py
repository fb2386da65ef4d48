"""Route ownership at the edge: services are admitted in established order; a newcomer may not
take a host and match (or every call of a route) that an established service already serves, nor
an SNI name (or the catch-all) on the TCP port of an established TCP service, nor exceed the
per-service limits. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.model.limits import Charge, route_bytes, virtual_host_bytes
from controlplane.model.mesh import HeaderMatch, QueryMatch, Service
from controlplane.model.routing import covers, covers_host, is_routed, is_wildcard, wildcards_covering


@dataclass
class _Host:
    """The own routes of one host admitted so far."""

    by_match: dict[tuple[str, tuple[HeaderMatch, ...], tuple[QueryMatch, ...]], Service] = field(default_factory=dict)
    by_priority: dict[int, list[Service]] = field(default_factory=dict)
    sized: list[tuple[str, int]] = field(default_factory=list)  # (path, route bytes) of each own route
    catch_alls: list[str] = field(default_factory=list)  # prefixes of own routes without header matches


def _match_key(service: Service) -> tuple[str, tuple[HeaderMatch, ...], tuple[QueryMatch, ...]]:
    return service.route.path_key, service.route.headers, service.route.query


def _path(service: Service) -> str:
    return service.route.method or service.route.path_prefix


def _catch_all(service: Service) -> str | None:
    """The prefix under which this route takes every call (no method, no header matches), or None."""
    route = service.route
    return None if route.method or route.headers else route.path_prefix


class EdgeRoutes:
    """The routed services admitted so far, by host."""

    def __init__(self) -> None:
        self._hosts: dict[str, _Host] = {}
        self.routes = 0  # entries charged to the admitted services, copies included

    def blocking(self, service: Service) -> list[tuple[str, Service]]:
        """(host, admitted service) pairs `service` may not join: the same match, or a route whose
        every call `service` would take (a higher priority and a match covering it)."""
        if not is_routed(service):
            return []  # no route of its own (route.enabled=false, subsets): it takes no call
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
        if not is_routed(service):
            return []
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
        hosts it brings, and the copies of its wildcard routes into hosts already there. Copies
        that could never match (under a catch-all prefix of the host) are not sent, nor charged."""
        if not is_routed(service):
            return Charge(hosts=0, routes=0, bytes=0)
        own_bytes, path = route_bytes(service), _path(service)
        own_catch_all = _catch_all(service)
        routes, size = 0, 0
        hosts = set(service.route.hosts)
        for host in service.route.hosts:
            routes, size = routes + 1, size + own_bytes
            if host not in self._hosts:
                size += virtual_host_bytes(host)
                for wildcard in wildcards_covering(host):
                    copied = self._hosts.get(wildcard)
                    for other_path, other_bytes in copied.sized if copied is not None else ():
                        if own_catch_all is None or not other_path.startswith(own_catch_all):
                            routes, size = routes + 1, size + other_bytes
            if is_wildcard(host):
                for other, admitted in self._hosts.items():
                    if other not in hosts and covers_host(host, other) and not any(path.startswith(p) for p in admitted.catch_alls):
                        routes, size = routes + 1, size + own_bytes
        return Charge(hosts=len(service.route.hosts), routes=routes, bytes=size)

    def admit(self, service: Service, charge: Charge) -> None:
        self.routes += charge.routes
        if not is_routed(service):
            return
        own_bytes = route_bytes(service)
        for host in service.route.hosts:
            admitted = self._hosts.setdefault(host, _Host())
            admitted.by_match.setdefault(_match_key(service), service)
            admitted.by_priority.setdefault(service.route.priority, []).append(service)
            admitted.sized.append((_path(service), own_bytes))
            catch_all = _catch_all(service)
            if catch_all is not None:
                admitted.catch_alls.append(catch_all)


class TcpPorts:
    """The (port, SNI name) pairs of the TCP services admitted so far; `*` stands for a port's
    catch-all (a service without hosts). Every TCP service holds its pairs, routed at the edge or
    not: the sidecars that call it listen on its port too. As for HTTP hosts, a name is held
    exactly: `*.example.com` and `a.example.com` are two names (Envoy picks the most specific)."""

    def __init__(self) -> None:
        self._owners: dict[tuple[int, str], Service] = {}

    def blocking(self, service: Service) -> tuple[str, Service] | None:
        """(name, admitted service) for the first of `service`'s names on its port that an admitted
        service holds already, or None. The name is `*` for the port's catch-all."""
        port = service.route.port
        if port is None or service.protocol.is_http:
            return None
        for name in service.route.hosts:
            owner = self._owners.get((port, name))
            if owner is not None:
                return name, owner
        return None

    def admit(self, service: Service) -> None:
        if service.route.port is not None and not service.protocol.is_http:
            for name in service.route.hosts:
                self._owners.setdefault((service.route.port, name), service)
