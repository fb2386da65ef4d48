"""TCP services (`xds.protocol=tcp`): a listener per service port with the tcp_proxy filter, at the edge
(one per routed TCP service, on the edge's address), in sidecars (one per TCP upstream, on the outbound
address) and as a sidecar's inbound listener in front of a TCP app. Envoy balances per connection."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Mesh, Service
from controlplane.proxy.roles import EdgeRole, SidecarRole
from controlplane.translate.access_log import tcp_access_logs
from controlplane.translate.durations import duration
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.packing import pack

TCP_PROXY = "envoy.filters.network.tcp_proxy"
# A connect that fails (refused, timed out) is tried again on another task, like the HTTP routes'
# default retry on connect-failure (2 retries); once a connection is up, it is never retried.
MAX_CONNECT_ATTEMPTS = 3


def is_tcp(service: Service) -> bool:
    return not service.protocol.is_http


def listener_name(service: str) -> str:
    return f"tcp/{service}"


def tcp_proxy(
    stat_prefix: str, cluster: str, *, idle_ms: int | None = None, access_logs: Sequence[accesslog_pb2.AccessLog] = ()
) -> tcp_proxy_pb2.TcpProxy:
    """Every connection to `cluster`; `idle_ms` closes it after that long without bytes either way
    (None: Envoy's default, 1 h)."""
    proxy = tcp_proxy_pb2.TcpProxy(
        stat_prefix=stat_prefix,
        cluster=cluster,
        max_connect_attempts=wrappers_pb2.UInt32Value(value=MAX_CONNECT_ATTEMPTS),
        access_log=list(access_logs),
    )
    if idle_ms is not None:
        proxy.idle_timeout.CopyFrom(duration(idle_ms))
    return proxy


def tcp_listener(name: str, address: str, port: int, proxy: tcp_proxy_pb2.TcpProxy) -> listener_pb2.Listener:
    """A listener on `address:port` with one filter chain: the TCP proxy."""
    return listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port)),
        filter_chains=[
            listener_components_pb2.FilterChain(filters=[listener_components_pb2.Filter(name=TCP_PROXY, typed_config=pack(proxy))])
        ],
    )


def service_listener(service: Service, address: str, *, access_logs: Sequence[accesslog_pb2.AccessLog] = ()) -> listener_pb2.Listener:
    """The listener for a TCP service's connections on `address`, at the port the service declares."""
    assert service.route.port is not None, "the model gives every tcp service a port"
    targets = split_targets(service)
    cluster = targets[0][0] if len(targets) == 1 else ""
    proxy = tcp_proxy(service.name, cluster, idle_ms=service.policy.timeouts.idle_ms, access_logs=access_logs)
    if not cluster:
        # Each connection picks a cluster by weight (canaries, revision splits), then a task in it.
        proxy.weighted_clusters.clusters.extend(
            tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=name, weight=weight) for name, weight in targets
        )
    return tcp_listener(listener_name(service.name), address, service.route.port, proxy)


def split_targets(service: Service) -> list[tuple[str, int]]:
    """(cluster, weight) of each cluster a TCP service's connections go to. Envoy refuses a weight of 0
    in a TCP proxy: such a target (blue-green's idle side) is left out."""
    if service.split is None:
        return [(service.name, 1)]
    return [(t.service, t.weight) for t in service.split.targets if t.weight > 0]


def _usable(services: Iterable[Service], taken: set[int | None]) -> list[Service]:
    """The TCP services whose port is free on this proxy. A port the proxy's own listeners use (its
    bootstrap chose them, the model cannot know) is left out: Envoy would refuse every listener."""
    return [s for s in services if is_tcp(s) and s.route.port not in taken]


def edge_listeners(mesh: Mesh, role: EdgeRole, options: EdgeOptions, memo: TranslationMemo) -> dict[str, listener_pb2.Listener]:
    """A listener per TCP service that has a route of its own, on the edge's address."""
    routed = (s for s in mesh.services if s.route.enabled and s.subset_of is None)

    def build(service: Service) -> listener_pb2.Listener:
        listener = service_listener(service, role.listen_address, access_logs=tcp_access_logs(options.access_log))
        listener.per_connection_buffer_limit_bytes.CopyFrom(wrappers_pb2.UInt32Value(value=options.limits.per_connection_buffer_bytes))
        return listener

    return {
        listener_name(s.name): memo.get(
            "listener/tcp-edge", (role.listen_address, options.access_log, options.limits, memo.settings_key(s)), partial(build, s)
        )
        for s in _usable(routed, {role.listen_port})
    }


def sidecar_listeners(upstreams: Iterable[Service], role: SidecarRole, memo: TranslationMemo) -> dict[str, listener_pb2.Listener]:
    """A listener per TCP upstream on the sidecar's outbound address: the app connects to
    `outbound_address:<the upstream's xds.route.port>`."""
    return {
        listener_name(s.name): memo.get(
            "listener/tcp-outbound", (role.outbound_address, memo.settings_key(s)), partial(service_listener, s, role.outbound_address)
        )
        for s in _usable(upstreams, {role.outbound_port, role.inbound_port})
    }


def inbound_listener(name: str, address: str, port: int, cluster: str) -> listener_pb2.Listener:
    """A sidecar's inbound listener in front of a TCP app: every connection to `cluster`."""
    return tcp_listener(name, address, port, tcp_proxy(name, cluster))
