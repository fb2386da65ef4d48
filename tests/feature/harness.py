"""Feature-test harness (Contour's featuretests, in Python): ECS views go through the real pipeline
(build_mesh -> SnapshotCache -> DiscoveryServer on a loopback port) to a real grpcio ADS client
that behaves like the proxy of its role: it ACKs every response, asks EDS for the clusters it
received and RDS for the route configurations its listeners name (a gRPC client: the other way
round, from its target down), and keeps what it holds by type and name."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Mapping

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from controlplane.cache.store import SnapshotCache
from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.server.ads import DiscoveryServer
from controlplane.server.registry import ProxyRegistry
from controlplane.translate import TranslationMemo
from controlplane.xds.types import TypeUrl
from unit.xds import decoded

CDS, EDS, LDS, RDS = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
WAIT_SECONDS = 10.0
QUIET_SECONDS = 0.3

EDGE = {"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10000}


class Pipeline:
    """The control plane's pipeline below discovery, in process."""

    def __init__(self, memo: TranslationMemo) -> None:
        self.memo = memo
        self.cache = SnapshotCache(memo=memo)
        self.registry = ProxyRegistry()
        self.channel: grpc.aio.Channel | None = None

    def publish(self, *views: ClusterState) -> bool:
        """What discovery does with a new view of ECS; True when the mesh changed."""
        return self.cache.set_mesh(build_mesh(list(views)))

    def proxy(self, node_id: str, metadata: Mapping[str, object], targets: tuple[str, ...] = ()) -> Proxy:
        assert self.channel is not None, "use `async with serving() as pipeline`"
        return Proxy(self.channel, node_id, metadata, targets)


@asynccontextmanager
async def serving() -> AsyncIterator[Pipeline]:
    pipeline = Pipeline(TranslationMemo())
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(DiscoveryServer(pipeline.cache, pipeline.registry).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    pipeline.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pipeline
    finally:
        await pipeline.channel.close()
        await server.stop(0)


def _rds_names(listeners: Mapping[str, Any]) -> list[str]:
    names = set()
    for listener in listeners.values():
        managers = [f.typed_config for chain in listener.filter_chains for f in chain.filters]
        if listener.HasField("api_listener"):
            managers.append(listener.api_listener.api_listener)
        for packed in managers:
            manager = hcm_pb2.HttpConnectionManager()
            if packed.Unpack(manager) and manager.HasField("rds"):
                names.add(manager.rds.route_config_name)
    return sorted(names)


def _eds_names(clusters: Mapping[str, Any]) -> list[str]:
    return sorted(c.eds_cluster_config.service_name or c.name for c in clusters.values() if c.type == cluster_pb2.Cluster.EDS)


def _routed_clusters(routes: Mapping[str, Any]) -> list[str]:
    return sorted(
        {r.route.cluster for config in routes.values() for vh in config.virtual_hosts for r in vh.routes if r.route.cluster}
        | {w.name for config in routes.values() for vh in config.virtual_hosts for r in vh.routes for w in r.route.weighted_clusters.clusters}
    )


class Proxy:
    """One ADS stream (state of the world) that follows up on what it receives, as its role would."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str, metadata: Mapping[str, object], targets: tuple[str, ...]) -> None:
        self.node_id, self.metadata = node_id, dict(metadata)
        self.proxyless = metadata.get("role") == "grpc-client"
        self.targets = targets
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        self.held: dict[TypeUrl, dict[str, Any]] = {t: {} for t in (CDS, EDS, LDS, RDS)}
        self.subscribed: dict[TypeUrl, list[str]] = {}
        self.acked: dict[TypeUrl, tuple[str, str]] = {}  # (version, nonce), sent with every later request
        self.received: list[TypeUrl] = []  # every response's type, in order
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Proxy:
        if self.proxyless:
            await self._subscribe(LDS, list(self.targets))
        else:
            await self._subscribe(CDS, [])
            await self._subscribe(LDS, [])
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._reader is not None
        self._reader.cancel()
        self.call.cancel()

    def _request(self, type_url: TypeUrl, names: list[str]) -> discovery_pb2.DiscoveryRequest:
        request = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=names)
        request.node.id = self.node_id
        request.node.metadata.update(self.metadata)
        return request

    async def _subscribe(self, type_url: TypeUrl, names: list[str]) -> None:
        request = self._request(type_url, names)
        if type_url in self.acked:
            request.version_info, request.response_nonce = self.acked[type_url]
        self.subscribed[type_url] = names
        await self.call.write(request)

    async def _follow(self, type_url: TypeUrl, names: list[str]) -> None:
        """Ask for exactly `names`, as Envoy does once it knows them. (An empty list would be a
        wildcard request: a proxy that needs nothing of a type does not ask.)"""
        if names and self.subscribed.get(type_url) != names:
            await self._subscribe(type_url, names)

    async def _read(self) -> None:
        while True:
            response = await self.call.read()
            if response is grpc.aio.EOF:
                return
            type_url = TypeUrl(response.type_url)
            self.received.append(type_url)
            self.held[type_url] = decoded(response)
            self.acked[type_url] = (response.version_info, response.nonce)
            await self._subscribe(type_url, self.subscribed.get(type_url, []))
            if type_url is CDS:
                await self._follow(EDS, _eds_names(self.held[CDS]))
            elif type_url is LDS:
                await self._follow(RDS, _rds_names(self.held[LDS]))
            elif type_url is RDS and self.proxyless:
                await self._follow(CDS, _routed_clusters(self.held[RDS]))
            self._changed.set()

    async def until(self, condition: Callable[[Proxy], bool], timeout: float = WAIT_SECONDS) -> None:
        """Wait until `condition` holds on what the proxy holds; fail with what it holds if it never does."""
        deadline = time.monotonic() + timeout
        while not condition(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.node_id}: condition not met; holding {self.names()}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def synced(self) -> Proxy:
        """Until every type the proxy asked for has arrived and nothing more comes for a moment."""
        while True:
            await self.until(lambda p: all(t in p.received for t in p.subscribed))
            await self.quiet()
            if all(t in self.received for t in self.subscribed):
                return self

    async def quiet(self) -> list[TypeUrl]:
        """Wait until no response arrives for QUIET_SECONDS; return the types that arrived meanwhile."""
        start = len(self.received)
        while True:
            seen = len(self.received)
            await asyncio.sleep(QUIET_SECONDS)
            if len(self.received) == seen:
                return self.received[start:]

    def names(self) -> dict[str, list[str]]:
        return {t.short: sorted(self.held[t]) for t in (CDS, EDS, LDS, RDS)}

    # What the proxy holds, read the way a user reads /config_dump.

    def cluster(self, name: str) -> cluster_pb2.Cluster:
        return self.held[CDS][name]  # type: ignore[no-any-return]

    def listener(self, name: str) -> listener_pb2.Listener:
        return self.held[LDS][name]  # type: ignore[no-any-return]

    def routes(self, name: str) -> route_pb2.RouteConfiguration:
        return self.held[RDS][name]  # type: ignore[no-any-return]

    def endpoints(self, cluster: str) -> list[tuple[str, int, str]]:
        """(address, port, health) of each endpoint of `cluster`."""
        assignment = self.held[EDS][cluster]
        return sorted(
            (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value, _health_name(e.health_status))
            for locality in assignment.endpoints
            for e in locality.lb_endpoints
        )


def _health_name(status: int) -> str:
    return health_check_pb2.HealthStatus.Name(status)
