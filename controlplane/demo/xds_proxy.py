"""A simulated proxy: one ADS (state of the world) stream that walks CDS -> EDS -> LDS -> RDS with
ACKs as Envoy does, keeps what it was sent (bytes by type and name, and each type's version), and
ACKs every later push. Used to compare what replicas serve and to load them with many proxies."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from controlplane.xds.types import TypeUrl

CDS, EDS, LDS, RDS = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def edge_node(node_id: str, listen_port: int) -> tuple[str, str, dict[str, Any]]:
    return node_id, "edge", {"role": "edge", "listen_address": "127.0.0.1", "listen_port": listen_port}


def sidecar_node(node_id: str, service: str, outbound_port: int = 15001) -> tuple[str, str, dict[str, Any]]:
    return node_id, service, {"role": "sidecar", "service": service, "outbound_address": "127.0.0.1", "outbound_port": outbound_port}


def _eds_names(resources: Mapping[str, bytes]) -> list[str]:
    names = []
    for name, value in resources.items():
        cluster = cluster_pb2.Cluster.FromString(value)
        if cluster.type == cluster_pb2.Cluster.EDS:
            names.append(cluster.eds_cluster_config.service_name or name)
    return sorted(names)


def _rds_names(resources: Mapping[str, bytes]) -> list[str]:
    names: set[str] = set()
    for value in resources.values():
        listener = listener_pb2.Listener.FromString(value)
        chains = [*listener.filter_chains, *([listener.default_filter_chain] if listener.HasField("default_filter_chain") else [])]
        for chain in chains:
            for f in chain.filters:
                if f.typed_config.type_url == HCM:
                    manager = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                    if manager.HasField("rds"):
                        names.add(manager.rds.route_config_name)
    return sorted(names)


@dataclass
class Received:
    """What one stream was sent: by type, the version and the resources' bytes by name."""

    versions: dict[TypeUrl, str] = field(default_factory=dict)
    resources: dict[TypeUrl, dict[str, bytes]] = field(default_factory=dict)
    responses: int = 0
    # The version of each type's first response on the current stream (what a reconnect brought).
    first_versions: dict[TypeUrl, str] = field(default_factory=dict)


class SimulatedProxy:
    """One proxy on one stream at a time. `run` walks and then ACKs pushes until the stream ends;
    `reconnect` opens a new stream (on another channel, e.g. to another replica) and says whether
    the first answers brought versions it did not hold (churn)."""

    def __init__(self, node: tuple[str, str, dict[str, Any]]) -> None:
        self.node_id, self.node_cluster, self.metadata = node
        self.received = Received()
        self.synced = asyncio.Event()
        self.ended: str | None = None  # why the last stream ended
        self.streams = 0
        self.synced_at: float | None = None
        self._nonces: dict[TypeUrl, str] = {}
        self._subscribed: dict[TypeUrl, list[str]] = {}

    def _request(self, type_url: TypeUrl, names: list[str]) -> discovery_pb2.DiscoveryRequest:
        self._subscribed[type_url] = names
        if type_url in (EDS, RDS):  # a proxy forgets what it no longer subscribes to
            held = self.received.resources.get(type_url, {})
            for name in [n for n in held if n not in names]:
                del held[name]
        req = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=names)
        req.node.id = self.node_id
        req.node.cluster = self.node_cluster
        req.node.metadata.update(self.metadata)
        req.response_nonce = self._nonces.get(type_url, "")
        version = self.received.versions.get(type_url)
        if version is not None:
            req.version_info = version  # what it runs: a new stream says so, as Envoy does
        return req

    def _take(self, response: discovery_pb2.DiscoveryResponse) -> TypeUrl:
        type_url = TypeUrl(response.type_url)
        got = {}
        for packed in response.resources:
            value = packed.value
            got[_name(type_url, value)] = value
        held = self.received.resources.setdefault(type_url, {})
        if type_url in (CDS, LDS):
            held.clear()  # state of the world: what is not in the response is gone
        held.update(got)
        self.received.versions[type_url] = response.version_info
        self.received.first_versions.setdefault(type_url, response.version_info)
        self._nonces[type_url] = response.nonce
        self.received.responses += 1
        return type_url

    async def run(self, channel: grpc.aio.Channel) -> None:
        """One stream: the walk, then ACK pushes until it ends (its end is recorded, not raised)."""
        self.streams += 1
        self.synced.clear()
        # Nonces and subscriptions belong to a stream; versions and resources are what the proxy runs.
        self._subscribed.clear()
        self._nonces.clear()
        self.received.first_versions.clear()
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        try:
            await call.write(self._request(CDS, []))
            async for response in call:
                type_url = self._take(response)
                wanted = {EDS: _eds_names(self.received.resources.get(CDS, {})), RDS: _rds_names(self.received.resources.get(LDS, {}))}
                await call.write(self._request(type_url, wanted.get(type_url, [])))  # the ACK
                # Then what Envoy asks next: endpoints of the (new) clusters, listeners, their routes
                # (a type with nothing to ask for is skipped, as Envoy does).
                if type_url is CDS and wanted[EDS] and self._subscribed.get(EDS) != wanted[EDS]:
                    await call.write(self._request(EDS, wanted[EDS]))
                if type_url in (CDS, EDS) and LDS not in self._subscribed and (type_url is EDS or not wanted[EDS]):
                    await call.write(self._request(LDS, []))
                if type_url is LDS and wanted[RDS] and self._subscribed.get(RDS) != wanted[RDS]:
                    await call.write(self._request(RDS, wanted[RDS]))
                if (type_url is RDS or (type_url is LDS and not wanted[RDS])) and not self.synced.is_set():
                    self.synced_at = time.monotonic()
                    self.synced.set()
            self.ended = "closed"
        except grpc.aio.AioRpcError as error:
            self.ended = f"{error.code().name}: {error.details()}"
        except asyncio.CancelledError:
            call.cancel()
            self.ended = "cancelled"
            raise

    def snapshot(self) -> dict[str, dict[str, bytes]]:
        return {t.short: dict(r) for t, r in self.received.resources.items()}


# The message of each type (by its short name), to decode what was received.
MESSAGES: dict[str, Any] = {
    "CDS": cluster_pb2.Cluster,
    "EDS": endpoint_pb2.ClusterLoadAssignment,
    "LDS": listener_pb2.Listener,
    "RDS": route_pb2.RouteConfiguration,
}


def _name(type_url: TypeUrl, value: bytes) -> str:
    message = MESSAGES[type_url.short].FromString(value)
    return str(message.cluster_name if type_url is EDS else message.name)


async def fetch(target: str, node: tuple[str, str, dict[str, Any]], timeout: float = 20.0) -> SimulatedProxy:
    """Connect to `target`, walk until synced, disconnect: what a proxy of that node is served."""
    proxy = SimulatedProxy(node)
    async with grpc.aio.insecure_channel(target) as channel:
        stream = asyncio.create_task(proxy.run(channel))
        try:
            await asyncio.wait_for(proxy.synced.wait(), timeout)
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
    return proxy
