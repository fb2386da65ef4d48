"""The edge's RouteConfiguration, kept serialized so that a change of one service costs what it
touches: each route serialized once per service settings, each virtual host with the services it
was built from, the configuration the join of their bytes (byte for byte what serializing it whole
gives: fields in number order; tests/unit/test_edge_route_wire.py), and the clusters it names
known as it is built."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2

from controlplane.model.mesh import Mesh, Service
from controlplane.translate.memo import IN_MEMORY_PER_SERIALIZED_BYTE, TranslationMemo
from controlplane.translate.route import edge_domains, memoised_route, route_clusters, route_configuration
from controlplane.xds import wire


@dataclass(frozen=True, slots=True)
class EdgeRoutes:
    """The edge's route configuration and the clusters it sends traffic to (known as it is built:
    the cache need not walk thousands of routes to find them)."""

    config: route_pb2.RouteConfiguration
    clusters: frozenset[str]
    estimated_bytes: int  # what the memo holds for it (memo.estimated_bytes)


@dataclass(frozen=True, slots=True)
class _RouteWire:
    """One service's route as the entry of VirtualHost.routes it becomes, and the clusters it names."""

    entry: bytes
    clusters: frozenset[str]

    @property
    def estimated_bytes(self) -> int:
        return len(self.entry)


@dataclass(frozen=True, slots=True)
class _HostWire:
    """One virtual host serialized, with the services (by identity) and route entries it was built from."""

    services: tuple[Service, ...]
    routes: tuple[_RouteWire, ...]
    payload: bytes
    clusters: frozenset[str]

    @property
    def estimated_bytes(self) -> int:
        return 2 * len(self.payload) + 64 * len(self.routes)


def edge_routes(mesh: Mesh, name: str, memo: TranslationMemo) -> EdgeRoutes:
    """One virtual host per host name (Envoy refuses a domain in two virtual hosts), with the routes
    the model resolved for it, in its order. Services without a route (route.enabled=false,
    per-revision subsets) only receive calls as weight targets.

    A change of one service costs what it touches: each virtual host is kept serialized with the
    services it was built from, and only the entries of services that are no longer the same
    objects are looked at again (each route is kept serialized per service settings); the
    configuration is the bytes of its virtual hosts put together (what serializing it whole gives:
    fields in number order, tests/unit/test_edge_route_wire.py)."""
    index = mesh.by_name
    hosts = [_edge_virtual_host(memo, vhost.host, tuple([index[service] for service in vhost.routes])) for vhost in mesh.virtual_hosts]
    key = tuple([host.payload for host in hosts])
    return memo.get_for("route-configuration/edge", name, key, partial(_edge_route_configuration, name, hosts))


def _edge_virtual_host(memo: TranslationMemo, host: str, services: tuple[Service, ...]) -> _HostWire:
    previous = memo.peek("virtual-host/edge", host)
    if isinstance(previous, _HostWire) and len(previous.services) == len(services):
        moved = [i for i, (was, now) in enumerate(zip(previous.services, services)) if was is not now]
        if not moved:
            built = previous
        else:
            routes = list(previous.routes)
            for i in moved:
                routes[i] = _route_wire(memo, services[i])
            if all(routes[i] is previous.routes[i] for i in moved):  # the same settings (endpoints moved)
                built = _HostWire(services, previous.routes, previous.payload, previous.clusters)
            else:
                built = _host_wire(host, services, routes)
    else:
        built = _host_wire(host, services, [_route_wire(memo, service) for service in services])
    # Keyed on itself: the slot holds the latest, and the role's use of it is recorded.
    return memo.get_for("virtual-host/edge", host, built, lambda: built)


def _host_wire(host: str, services: tuple[Service, ...], routes: list[_RouteWire]) -> _HostWire:
    head = rc.VirtualHost(name=host.replace("*", "_any_"), domains=edge_domains(host)).SerializeToString(deterministic=True)
    payload = head + b"".join([route.entry for route in routes])
    return _HostWire(services, tuple(routes), payload, frozenset().union(*(route.clusters for route in routes)))


def _route_wire(memo: TranslationMemo, service: Service) -> _RouteWire:
    def build() -> _RouteWire:
        route = memoised_route(memo, service)
        return _RouteWire(wire.field(_VIRTUAL_HOST_ROUTES, route.SerializeToString(deterministic=True)), frozenset(route_clusters(route)))

    return memo.get_for("route-wire/edge", service.name, memo.settings_key(service), build)


def _edge_route_configuration(name: str, hosts: list[_HostWire]) -> EdgeRoutes:
    head = route_pb2.RouteConfiguration(name=name).SerializeToString(deterministic=True)
    # validate_clusters (field 7) comes after the virtual hosts (field 2).
    tail = route_configuration("", []).SerializeToString(deterministic=True)
    payload = head + b"".join([wire.field(_CONFIGURATION_VIRTUAL_HOSTS, host.payload) for host in hosts]) + tail
    config = route_pb2.RouteConfiguration.FromString(payload)
    return EdgeRoutes(config, frozenset().union(*(host.clusters for host in hosts)), len(payload) * IN_MEMORY_PER_SERIALIZED_BYTE)


_VIRTUAL_HOST_ROUTES = rc.VirtualHost.DESCRIPTOR.fields_by_name["routes"].number
_CONFIGURATION_VIRTUAL_HOSTS = route_pb2.RouteConfiguration.DESCRIPTOR.fields_by_name["virtual_hosts"].number
