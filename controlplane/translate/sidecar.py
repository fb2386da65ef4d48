"""The sidecar role: the services the sidecar's app declares it calls (`xds.upstreams`) behind an
outbound listener (HTTP services) and a listener per TCP service (tcp.py), and optionally an inbound
listener in front of the app."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh, Service
from controlplane.proxy.roles import SidecarRole
from controlplane.translate import cluster, endpoint, listener, route, tcp
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.xds.types import TypeUrl


def upstreams_of(index: Mapping[str, Service], service_name: str) -> list[Service]:
    """The services `service_name` declares it calls that exist in the mesh, by name."""
    own = index.get(service_name)
    wanted = sorted(set(own.upstreams) if own else set())
    # Per-revision subsets of a service are routing detail, not targets of their own.
    return [index[name] for name in wanted if name in index and index[name].subset_of is None]


def sidecar_resources(mesh: Mesh, role: SidecarRole, memo: TranslationMemo) -> Resources:
    index = mesh.by_name
    upstreams = upstreams_of(index, role.service)
    http = [s for s in upstreams if not tcp.is_tcp(s)]
    outbound = memo.get_for(
        "routes/outbound", tuple(s.name for s in http), tuple(memo.settings_key(s) for s in http),
        lambda: route.outbound_routes(listener.OUTBOUND, http, memo),
    )
    # A route may split traffic (canary weights, per-revision subsets) to clusters beyond the
    # upstreams themselves: the sidecar needs every cluster its routes name.
    needed = route.referenced_clusters(outbound) | {s.name for s in upstreams}
    needed |= {name for s in upstreams if tcp.is_tcp(s) for name, _ in tcp.split_targets(s)}
    targets = [index[name] for name in sorted(needed) if name in index]
    clusters: dict[str, Message] = {s.name: cluster.memoised_service_cluster(memo, s, local_fleet=role.zone_aware) for s in targets}
    listeners: dict[str, Message] = {
        listener.OUTBOUND: memo.get(
            "listener/outbound", (role.outbound_address, role.outbound_port),
            lambda: listener.outbound_listener(role.outbound_address, role.outbound_port),
        ),
        **tcp.sidecar_listeners(upstreams, role, memo),
    }
    if role.inbound_port is not None and role.app_port is not None:
        inbound_port, app_port, own = role.inbound_port, role.app_port, index.get(role.service)
        clusters[cluster.LOCAL_APP] = memo.get(
            "cluster/local-app", (own.protocol if own else None, role.app_address, app_port),
            lambda: cluster.local_app_cluster(own, role.app_address, app_port),
        )
        if own is not None and tcp.is_tcp(own):
            listeners[listener.INBOUND] = memo.get(
                "listener/inbound-tcp", (role.inbound_address, inbound_port),
                lambda: tcp.inbound_listener(listener.INBOUND, role.inbound_address, inbound_port, cluster.LOCAL_APP),
            )
        else:
            listeners[listener.INBOUND] = memo.get(
                "listener/inbound", (role.inbound_address, inbound_port),
                lambda: listener.inbound_listener(role.inbound_address, inbound_port, route.inbound_routes(listener.INBOUND)),
            )
    # A zone-aware sidecar's Envoy has a static local cluster reading its own service's endpoints
    # by EDS (the bootstrap's `local_cluster`): the same resource an upstream of that name uses.
    endpoint_services = targets + [index[role.service]] if role.zone_aware and role.service in index and role.service not in needed else targets
    return Resources(
        by_type={
            TypeUrl.CLUSTER: clusters,
            TypeUrl.ENDPOINT: {s.name: endpoint.memoised_service_load_assignment(memo, s) for s in endpoint_services},
            TypeUrl.LISTENER: listeners,
            TypeUrl.ROUTE: {listener.OUTBOUND: outbound},
        },
        # Its own service (upstreams, protocol), the upstreams it declares, present or not (one
        # that shows up joins), and every cluster its routes send to.
        depends_on=frozenset({role.service, *(own.upstreams if (own := index.get(role.service)) else ()), *needed}),
    )
