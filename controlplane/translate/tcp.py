"""TCP services (`xds.protocol=tcp`): a listener per TCP port with the tcp_proxy filter, at the edge
(on the edge's address, for the routed TCP services), in sidecars (for the TCP upstreams, on the
outbound address) and as a sidecar's inbound listener in front of a TCP app. Envoy balances per
connection.

A port one service without SNI names has keeps the plain shape, listener `tcp/<service>` with one
filter chain. A port where a service names TLS SNI names (`xds.route.hosts`, shared by several
services) gets listener `tcp/port/<port>`: the TLS inspector reads the ClientHello, and a filter
chain per service matches its `server_names`; the service without names (if any) has the chain
without a match, the catch-all (Envoy picks the most specific match, whatever the order)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from itertools import groupby

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
from controlplane.translate.edge_tls import tls_inspector
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


def port_listener_name(port: int) -> str:
    """The listener of a port shared by SNI (named by its port: the services on it come and go)."""
    return f"tcp/port/{port}"


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
    return listener_pb2.Listener(name=name, address=_address(address, port), filter_chains=[_chain(proxy)])


def _address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def _chain(proxy: tcp_proxy_pb2.TcpProxy) -> listener_components_pb2.FilterChain:
    return listener_components_pb2.FilterChain(filters=[listener_components_pb2.Filter(name=TCP_PROXY, typed_config=pack(proxy))])


def service_proxy(service: Service, *, access_logs: Sequence[accesslog_pb2.AccessLog] = ()) -> tcp_proxy_pb2.TcpProxy:
    """The TCP proxy of a service's connections: its cluster, or its clusters by weight."""
    targets = split_targets(service)
    cluster = targets[0][0] if len(targets) == 1 else ""
    proxy = tcp_proxy(service.name, cluster, idle_ms=service.policy.timeouts.idle_ms, access_logs=access_logs)
    if not cluster:
        # Each connection picks a cluster by weight (canaries, revision splits), then a task in it.
        proxy.weighted_clusters.clusters.extend(
            tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight(name=name, weight=weight) for name, weight in targets
        )
    return proxy


def port_listener(
    services: Sequence[Service], address: str, port: int, *, access_logs: Sequence[accesslog_pb2.AccessLog] = ()
) -> listener_pb2.Listener:
    """The listener for the TCP services that share `port` (one at least) on `address`."""
    if not _shared(services):
        return tcp_listener(listener_name(services[0].name), address, port, service_proxy(services[0], access_logs=access_logs))
    chains = []
    # The services with SNI names first, the catch-all last: the order Envoy's choice follows.
    for service in sorted(services, key=lambda s: (not s.route.server_names, s.name)):
        chain = _chain(service_proxy(service, access_logs=access_logs))
        chain.name = service.name
        if service.route.server_names:  # else the catch-all: no match at all
            chain.filter_chain_match.server_names.extend(service.route.server_names)
        chains.append(chain)
    return listener_pb2.Listener(
        name=port_listener_name(port),
        address=_address(address, port),
        listener_filters=[tls_inspector()],
        # A catch-all client that sends nothing first (a server-first protocol) still gets through,
        # after the inspector's timeout, rather than being closed.
        continue_on_listener_filters_timeout=True,
        filter_chains=chains,
    )


def by_port(services: Iterable[Service]) -> dict[int, list[Service]]:
    """The TCP services by their port, each port's in name order."""
    ordered = sorted(services, key=lambda s: (s.route.port or 0, s.name))
    return {port: list(group) for port, group in groupby(ordered, key=lambda s: s.route.port or 0)}


def _shared(services: Sequence[Service]) -> bool:
    """The port is told apart by SNI (a listener `tcp/port/<port>`), not held by one service without names."""
    return len(services) > 1 or bool(services[0].route.server_names)


def _listener_name(port: int, services: Sequence[Service]) -> str:
    return port_listener_name(port) if _shared(services) else listener_name(services[0].name)


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
    """A listener per port of the TCP services that have a route of their own, on the edge's address."""
    routed = (s for s in mesh.services if s.route.enabled and s.subset_of is None)

    def build(port: int, services: Sequence[Service]) -> listener_pb2.Listener:
        listener = port_listener(services, role.listen_address, port, access_logs=tcp_access_logs(options.access_log))
        listener.per_connection_buffer_limit_bytes.CopyFrom(wrappers_pb2.UInt32Value(value=options.limits.per_connection_buffer_bytes))
        return listener

    # Keyed on every service of the port: a change of one SNI service reaches the port's listener.
    return {
        _listener_name(port, services): memo.get(
            "listener/tcp-edge",
            (role.listen_address, options.access_log, options.limits, port, tuple(memo.settings_key(s) for s in services)),
            partial(build, port, services),
        )
        for port, services in by_port(_usable(routed, {role.listen_port})).items()
    }


def sidecar_listeners(upstreams: Iterable[Service], role: SidecarRole, memo: TranslationMemo) -> dict[str, listener_pb2.Listener]:
    """A listener per port of the TCP upstreams on the sidecar's outbound address: the app connects to
    `outbound_address:<the upstream's xds.route.port>` (with the upstream's SNI name, on a shared port)."""
    return {
        _listener_name(port, services): memo.get(
            "listener/tcp-outbound",
            (role.outbound_address, port, tuple(memo.settings_key(s) for s in services)),
            partial(port_listener, services, role.outbound_address, port),
        )
        for port, services in by_port(_usable(upstreams, {role.outbound_port, role.inbound_port})).items()
    }


def inbound_listener(name: str, address: str, port: int, cluster: str) -> listener_pb2.Listener:
    """A sidecar's inbound listener in front of a TCP app: every connection to `cluster`."""
    return tcp_listener(name, address, port, tcp_proxy(name, cluster))
