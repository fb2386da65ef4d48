"""Envoy resources for the sidecar of one service: an outbound listener for exactly the services it
declares it calls (`xds.upstreams`), and an optional inbound listener in front of the local app."""

from __future__ import annotations

import functools

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, wrappers_pb2
from google.protobuf.message import Message

from controlplane.model.mesh import Mesh, Service
from controlplane.proxy.roles import SidecarRole
from controlplane.translate import cluster, endpoint, route
from controlplane.translate.listener import INBOUND, OUTBOUND, inbound_listener, outbound_listener as socket_outbound_listener

LOCAL_APP = "local_app"


_last_index: list[tuple[Mesh, dict[str, Service]]] = []


def services_by_name(mesh: Mesh) -> dict[str, Service]:
    """Name -> service, built once per mesh: a fleet has a sidecar role per service, and scanning
    the whole mesh for each of them would make a rebuild quadratic."""
    if _last_index and _last_index[0][0] is mesh:
        return _last_index[0][1]
    index = {s.name: s for s in mesh.services}
    _last_index[:] = [(mesh, index)]
    return index


def upstreams_of(mesh: Mesh, service_name: str) -> list[Service]:
    """The services `service_name` declares it calls that exist in the mesh, by name."""
    index = services_by_name(mesh)
    own = index.get(service_name)
    wanted = sorted(set(getattr(own, "upstreams", ()) or ()) if own else set())
    return [index[name] for name in wanted if name in index and getattr(index[name], "subset_of", None) is None]


@functools.lru_cache(maxsize=1024)
def outbound_listener(address: str, port: int) -> listener_pb2.Listener:
    return socket_outbound_listener(address, port)


def _to_cluster(service: Service) -> rc.Route:
    """A catch-all route to `service` with the service's own retry policy and timeouts."""
    built = route.service_route(service)
    routed = rc.Route()
    routed.CopyFrom(built)
    routed.match.CopyFrom(rc.RouteMatch(prefix="/"))
    return routed


@functools.lru_cache(maxsize=16384)
def outbound_routes(upstreams: tuple[Service, ...]) -> route_pb2.RouteConfiguration:
    """The app calls an upstream by its service name as authority (`grpc.default_authority`), or
    through the catch-all host by the path prefix the upstream declares."""
    virtual_hosts = [rc.VirtualHost(name=s.name, domains=[s.name], routes=[_to_cluster(s)]) for s in upstreams]
    by_prefix = sorted((s for s in upstreams if s.route.path_prefix != "/"), key=lambda s: (-len(s.route.path_prefix), s.name))
    catch_all = [route.service_route(s) for s in by_prefix]
    if len(upstreams) == 1 and not by_prefix:
        catch_all.append(_to_cluster(upstreams[0]))
    if catch_all:
        virtual_hosts.append(rc.VirtualHost(name="_any_", domains=["*"], routes=catch_all))
    return route_pb2.RouteConfiguration(name=OUTBOUND, virtual_hosts=virtual_hosts, validate_clusters=wrappers_pb2.BoolValue(value=False))


def local_app_cluster(own: Service | None, address: str, port: int) -> cluster_pb2.Cluster:
    """The app next to the sidecar; it speaks the protocol its own labels declare."""
    local = cluster_pb2.Cluster(
        name=LOCAL_APP,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration_pb2.Duration(seconds=1),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=LOCAL_APP,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))
                            )
                        )
                    ]
                )
            ],
        ),
    )
    if own is not None:
        for key, value in cluster.service_cluster(own).typed_extension_protocol_options.items():
            local.typed_extension_protocol_options[key].CopyFrom(value)
    return local


def sidecar_resources(mesh: Mesh, role: SidecarRole) -> dict[str, dict[str, Message]]:
    upstreams = upstreams_of(mesh, role.service)
    routes = outbound_routes(tuple(upstreams))
    # A route may split traffic (canary weights, per-revision subsets) to clusters beyond the
    # upstreams themselves: the sidecar needs every cluster its routes name.
    needed = route.referenced_clusters(routes) | {s.name for s in upstreams}
    index = services_by_name(mesh)
    targets = [index[name] for name in sorted(needed) if name in index]
    clusters: dict[str, Message] = {s.name: cluster.service_cluster(s) for s in targets}
    listeners: dict[str, Message] = {OUTBOUND: outbound_listener(role.outbound_address, role.outbound_port)}
    if role.inbound_port is not None and role.app_port is not None:
        clusters[LOCAL_APP] = local_app_cluster(index.get(role.service), role.app_address, role.app_port)
        inbound_routes = route_pb2.RouteConfiguration(
            name=INBOUND,
            virtual_hosts=[
                rc.VirtualHost(
                    name="local",
                    domains=["*"],
                    routes=[rc.Route(match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(cluster=LOCAL_APP, timeout=duration_pb2.Duration()))],
                )
            ],
        )
        listeners[INBOUND] = inbound_listener(role.inbound_address, role.inbound_port, inbound_routes)
    return {
        "clusters": clusters,
        "endpoints": {s.name: endpoint.load_assignment(s) for s in targets},
        "listeners": listeners,
        "routes": {OUTBOUND: routes},
    }
