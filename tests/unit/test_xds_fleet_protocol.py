"""Delta ADS, per-type services, per-role pushes, restarts and slow clients, over a real gRPC
connection on loopback with real grpcio clients."""

from __future__ import annotations

import asyncio
import functools
from contextlib import asynccontextmanager
from typing import AsyncIterator

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.cluster.v3 import cds_pb2_grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.listener.v3 import lds_pb2_grpc
from google.rpc import status_pb2

from controlplane.cache.store import SnapshotCache
from controlplane.model.mesh import Mesh
from controlplane.server.ads import DiscoveryServer
from controlplane.server.registry import ProxyRegistry

from .xds import CDS, EDS, LDS, request, service

pytestmark = pytest.mark.timeout(30)


def run_async(scenario):  # type: ignore[no-untyped-def]
    """Run an async test body on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(scenario)
    def test() -> None:
        asyncio.run(scenario())

    return test
READ = 5.0
QUIET = 0.3


def with_upstreams(svc, *upstreams: str):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(svc, upstreams=tuple(upstreams))


def world(*services) -> Mesh:  # type: ignore[no-untyped-def]
    return Mesh(services=tuple(sorted(services, key=lambda s: s.name)))


@asynccontextmanager
async def serving(cache: SnapshotCache, registry: ProxyRegistry | None = None) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(DiscoveryServer(cache, registry or ProxyRegistry()).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(0)


class Stream:
    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self.call = call
        self._pending: asyncio.Future | None = None  # type: ignore[type-arg]

    async def send(self, req) -> None:  # type: ignore[no-untyped-def]
        await self.call.write(req)

    async def receive(self):  # type: ignore[no-untyped-def]
        pending = self._pending or asyncio.ensure_future(self.call.read())
        self._pending = None
        response = await asyncio.wait_for(asyncio.shield(pending), READ)
        assert response is not grpc.aio.EOF
        return response

    async def nothing_arrives(self) -> bool:
        self._pending = self._pending or asyncio.ensure_future(self.call.read())
        done, _ = await asyncio.wait({self._pending}, timeout=QUIET)
        return not done


def delta(type_url, subscribe=(), unsubscribe=(), *, ack=None, error=None, node: dict | None = None, initial=None):  # type: ignore[no-untyped-def]
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url.value, resource_names_subscribe=list(subscribe), resource_names_unsubscribe=list(unsubscribe)
    )
    req.node.id = "delta-1"
    req.node.metadata.update(node or {"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10080})
    if ack is not None:
        req.response_nonce = ack.nonce
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    for name, version in (initial or {}).items():
        req.initial_resource_versions[name] = version
    return req


def delta_names(response) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(r.name for r in response.resources)


@run_async
async def test_delta_wildcard_subscribe_unsubscribe_and_only_changed_resources() -> None:
    cache = SnapshotCache()
    cache.set_mesh(world(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    async with serving(cache) as channel:
        stream = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources())
        await stream.send(delta(CDS))  # legacy wildcard
        cds = await stream.receive()
        assert delta_names(cds) == ["a", "b"] and not cds.removed_resources
        await stream.send(delta(CDS, ack=cds))
        await stream.send(delta(EDS, ["a"]))
        eds = await stream.receive()
        assert delta_names(eds) == ["a"]
        await stream.send(delta(EDS, ["b"], ack=eds))
        eds_b = await stream.receive()
        assert delta_names(eds_b) == ["b"], "a was sent again although the client has it"
        await stream.send(delta(EDS, (), ["a"], ack=eds_b))
        assert await stream.nothing_arrives()
        # a's endpoints change: unsubscribed, so nothing; b's change: only b.
        cache.set_mesh(world(service("a", "127.0.0.9"), service("b", "127.0.0.2")))
        assert await stream.nothing_arrives()
        cache.set_mesh(world(service("a", "127.0.0.9"), service("b", "127.0.0.3")))
        update = await stream.receive()
        assert update.type_url == EDS.value and delta_names(update) == ["b"]
        # A service removed: its cluster goes in removed_resources, not re-sent clusters.
        await stream.send(delta(EDS, ack=update))
        cache.set_mesh(world(service("b", "127.0.0.3")))
        removal = await stream.receive()
        assert removal.type_url == CDS.value and list(removal.removed_resources) == ["a"] and not removal.resources


@run_async
async def test_delta_nack_is_recorded_not_resent_and_recovers_on_change() -> None:
    cache, registry = SnapshotCache(), ProxyRegistry()
    cache.set_mesh(world(service("a", "127.0.0.1")))
    async with serving(cache, registry) as channel:
        stream = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources())
        await stream.send(delta(CDS))
        cds = await stream.receive()
        await stream.send(delta(CDS, ack=cds, error="cluster a: bad"))
        assert await stream.nothing_arrives(), "a NACKed resource was sent again"
        (record,) = registry.proxies()
        assert record.status(CDS).nacks == 1 and record.status(CDS).last_nack.message == "cluster a: bad"  # type: ignore[union-attr]
        cache.set_mesh(world(service("a", "127.0.0.1", prefix="/new/")))  # routes change, cluster does not
        assert await stream.nothing_arrives()
        cache.set_mesh(world(service("a", "127.0.0.1"), service("c", "127.0.0.3")))
        fixed = await stream.receive()
        assert delta_names(fixed) == ["c"]


@run_async
async def test_reconnect_to_a_restarted_server_changes_nothing() -> None:
    the_world = world(service("a", "127.0.0.1"), service("b", "127.0.0.2"))
    first, second = SnapshotCache(), SnapshotCache()
    first.set_mesh(the_world)
    async with serving(first) as channel:
        sotw = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources())
        req = request(CDS)
        req.node.metadata.update({"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10080})
        await sotw.send(req)
        before = await sotw.receive()
        dstream = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources())
        await dstream.send(delta(CDS))
        had = {r.name: r.version for r in (await dstream.receive()).resources}
    second.set_mesh(the_world)  # a new process with the same view of ECS
    async with serving(second) as channel:
        sotw = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources())
        req = request(CDS, version=before.version_info)
        req.node.metadata.update({"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10080})
        await sotw.send(req)
        after = await sotw.receive()
        assert after.version_info == before.version_info
        assert [r.value for r in after.resources] == [r.value for r in before.resources]
        dstream = Stream(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources())
        await dstream.send(delta(CDS, initial=had))
        resumed = await dstream.receive()
        assert not resumed.resources and not resumed.removed_resources, "a reconnect re-sent unchanged clusters"


@run_async
async def test_a_change_to_one_service_reaches_only_the_proxies_that_receive_it() -> None:
    cache = SnapshotCache()
    a, c = with_upstreams(service("a", "127.0.0.1"), "b"), with_upstreams(service("c", "127.0.0.3"), "d")
    cache.set_mesh(world(a, service("b", "127.0.0.2"), c, service("d", "127.0.0.4")))
    async with serving(cache) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        sidecars = {}
        for name, upstream in (("a", "b"), ("c", "d")):
            stream = Stream(stub.DeltaAggregatedResources())
            node = {"role": "sidecar", "service": name, "outbound_port": 15001}
            await stream.send(delta(CDS, node=node))
            cds = await stream.receive()
            assert delta_names(cds) == [upstream]
            await stream.send(delta(CDS, ack=cds, node=node))
            await stream.send(delta(EDS, [upstream], node=node))
            eds = await stream.receive()
            await stream.send(delta(EDS, ack=eds, node=node))
            sidecars[name] = stream
        cache.set_mesh(world(a, service("b", "127.0.0.2"), c, service("d", "127.0.0.4", "127.0.0.5")))
        update = await sidecars["c"].receive()
        assert update.type_url == EDS.value and delta_names(update) == ["d"]
        assert await sidecars["c"].nothing_arrives(), "more than EDS was pushed for an endpoint change"
        assert await sidecars["a"].nothing_arrives(), "a sidecar that does not call d was pushed"


@run_async
async def test_per_type_services_answer_without_ads_ordering() -> None:
    cache = SnapshotCache()
    cache.set_mesh(world(service("a", "127.0.0.1")))
    async with serving(cache) as channel:
        listeners = Stream(lds_pb2_grpc.ListenerDiscoveryServiceStub(channel).StreamListeners())
        req = request(LDS)
        req.node.metadata.update({"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10080})
        await listeners.send(req)
        lds = await listeners.receive()  # a lone LDS stream cannot wait for CDS
        assert lds.type_url == LDS.value and len(lds.resources) == 1
        clusters = Stream(cds_pb2_grpc.ClusterDiscoveryServiceStub(channel).DeltaClusters())
        await clusters.send(delta(CDS))
        cds = await clusters.receive()
        cluster = cluster_pb2.Cluster()
        cds.resources[0].resource.Unpack(cluster)
        assert cluster.name == "a"


@run_async
async def test_a_stuck_client_does_not_delay_the_others() -> None:
    cache = SnapshotCache()
    big = [service(f"s{i:03}", *(f"127.{i // 200}.{i % 200}.{j}" for j in range(1, 30))) for i in range(150)]
    cache.set_mesh(world(*big))
    async with serving(cache) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        stuck = stub.DeltaAggregatedResources()
        await stuck.write(delta(CDS))
        await stuck.write(delta(EDS, [s.name for s in big]))  # and then never reads
        healthy = Stream(stub.DeltaAggregatedResources())
        await healthy.send(delta(CDS))
        cds = await healthy.receive()
        await healthy.send(delta(CDS, ack=cds))
        await healthy.send(delta(EDS, ["s000"]))
        eds = await healthy.receive()
        await healthy.send(delta(EDS, ack=eds))
        loop = asyncio.get_running_loop()
        for round_ in range(20):  # the stuck client falls ever further behind
            changed = list(big)
            changed[0] = service("s000", f"127.99.0.{round_ + 1}")
            started = loop.time()
            cache.set_mesh(world(*changed))
            update = await healthy.receive()
            assert loop.time() - started < 1.0
            assignment = endpoint_pb2.ClusterLoadAssignment()
            update.resources[0].resource.Unpack(assignment)
            assert assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address == f"127.99.0.{round_ + 1}"
            await healthy.send(delta(EDS, ack=update))
        stuck.cancel()
