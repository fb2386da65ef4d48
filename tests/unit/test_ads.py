"""The ADS server over a real gRPC connection on loopback, with a real grpcio client."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from controlplane.cache.store import SnapshotCache
from controlplane.proxy.roles import EdgeRole
from controlplane.server.ads import DiscoveryServer
from controlplane.server.registry import ProxyRegistry
from controlplane.server.subscriptions import NackBackoff

from .xds import CDS, EDS, LDS, RDS, addresses, decoded, mesh, names, request, routed_clusters, service, types

pytestmark = pytest.mark.timeout(20)
READ_TIMEOUT = 5.0
QUIET = 0.3  # how long "nothing arrives" is watched for


class Proxy:
    """One ADS stream from the client side."""

    def __init__(self, call: grpc.aio.StreamStreamCall) -> None:
        self.call = call
        self._pending: asyncio.Future[discovery_pb2.DiscoveryResponse] | None = None

    async def send(self, req: discovery_pb2.DiscoveryRequest) -> None:
        await self.call.write(req)

    async def receive(self) -> discovery_pb2.DiscoveryResponse:
        pending = self._pending or asyncio.ensure_future(self.call.read())
        self._pending = None
        response = await asyncio.wait_for(asyncio.shield(pending), READ_TIMEOUT)
        assert response is not grpc.aio.EOF, "stream ended"
        return response

    async def nothing_arrives(self) -> bool:
        # Not cancelled on timeout (that would cancel the RPC): kept for the next receive().
        self._pending = self._pending or asyncio.ensure_future(self.call.read())
        done, _ = await asyncio.wait({self._pending}, timeout=QUIET)
        return not done


def edge_request(type_url, names=(), *, role: str = "edge", listen_port: float = 10080, node_id: str = "edge-1", **kw):  # type: ignore[no-untyped-def]
    req = request(type_url, names, node_id=node_id, **kw)
    req.node.cluster = "edge"
    req.node.metadata.update({"role": role, "listen_address": "127.0.0.1", "listen_port": listen_port})
    return req


@asynccontextmanager
async def serving(cache: SnapshotCache, registry: ProxyRegistry) -> AsyncIterator[ads_pb2_grpc.AggregatedDiscoveryServiceStub]:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(DiscoveryServer(cache, registry).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0)


async def handshake(proxy: Proxy) -> dict[str, discovery_pb2.DiscoveryResponse]:
    """CDS -> EDS -> LDS -> RDS with ACKs, as Envoy walks it."""
    await proxy.send(edge_request(CDS))
    cds = await proxy.receive()
    assert types([cds]) == ["CDS"]
    await proxy.send(request(LDS))
    assert await proxy.nothing_arrives(), "LDS sent before CDS was ACKed"
    await proxy.send(request(CDS, ack=cds))
    await proxy.send(request(EDS, tuple(names(cds))))
    eds = await proxy.receive()
    lds = await proxy.receive()
    assert types([eds, lds]) == ["EDS", "LDS"]
    await proxy.send(request(EDS, tuple(names(cds)), ack=eds))
    await proxy.send(request(LDS, ack=lds))
    await proxy.send(request(RDS, ("edge",)))
    rds = await proxy.receive()
    assert types([rds]) == ["RDS"]
    await proxy.send(request(RDS, ("edge",), ack=rds))
    return {"CDS": cds, "EDS": eds, "LDS": lds, "RDS": rds}


def test_cds_eds_lds_rds_walk_with_acks() -> None:
    async def scenario() -> None:
        cache, registry = SnapshotCache(), ProxyRegistry()
        cache.set_mesh(mesh(service("orders", "127.0.10.1", "127.0.10.2"), service("billing", "127.0.11.1")))
        async with serving(cache, registry) as stub:
            proxy = Proxy(stub.StreamAggregatedResources())
            sent = await handshake(proxy)
            assert names(sent["CDS"]) == ["billing", "orders"]
            assert addresses(sent["EDS"], "orders") == [("127.0.10.1", 50051), ("127.0.10.2", 50051)]
            (listener,) = decoded(sent["LDS"]).values()
            # The listener is where this node's metadata asked for it.
            assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("127.0.0.1", 10080)  # type: ignore[attr-defined]
            assert routed_clusters(sent["RDS"]) == ["billing", "orders"]
            assert await proxy.nothing_arrives()

            (record,) = registry.proxies()
            assert (record.node_id, record.node_cluster, record.role) == ("edge-1", "edge", "edge/127.0.0.1:10080")
            snap = cache.snapshot(EdgeRole(listen_address="127.0.0.1", listen_port=10080))
            assert snap is not None
            assert {t.short: record.status(t).acked_version for t in (CDS, EDS, LDS, RDS)} == {
                t.short: snap.version(t) for t in (CDS, EDS, LDS, RDS)
            }
            proxy.call.cancel()
            for _ in range(50):
                if not registry.proxies():
                    break
                await asyncio.sleep(0.02)
            assert registry.proxies() == []

    asyncio.run(scenario())


def test_an_unknown_role_is_refused_with_invalid_argument_naming_it() -> None:
    async def scenario() -> None:
        cache, registry = SnapshotCache(), ProxyRegistry()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        async with serving(cache, registry) as stub:
            call = stub.StreamAggregatedResources()
            await call.write(edge_request(CDS, role="nonsense", node_id="edge-x"))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(call.read(), READ_TIMEOUT)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.details() == "node 'edge-x': metadata role='nonsense' is not supported; expected one of edge, sidecar, grpc-client"
            assert registry.proxies() == []

    asyncio.run(scenario())


def test_a_bad_listen_port_is_refused() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        async with serving(cache, ProxyRegistry()) as stub:
            call = stub.StreamAggregatedResources()
            await call.write(edge_request(CDS, listen_port=70000))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await asyncio.wait_for(call.read(), READ_TIMEOUT)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = caught.value.details()
            # Struct numbers arrive as floats, hence the value may read 70000.0.
            assert details.startswith("node 'edge-1': metadata listen_port=70000"), details
            assert details.endswith(": expected an integer 1-65535"), details

    asyncio.run(scenario())


def test_nothing_is_served_before_the_first_mesh() -> None:
    async def scenario() -> None:
        cache, registry = SnapshotCache(), ProxyRegistry()
        async with serving(cache, registry) as stub:
            proxy = Proxy(stub.StreamAggregatedResources())
            await proxy.send(edge_request(CDS))
            assert await proxy.nothing_arrives()
            assert len(registry.proxies()) == 1  # connected, waiting

            cache.set_mesh(mesh(service("orders", "127.0.10.1")))
            cds = await proxy.receive()
            assert types([cds]) == ["CDS"] and names(cds) == ["orders"]

    asyncio.run(scenario())


def test_an_endpoint_only_change_pushes_only_eds() -> None:
    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        async with serving(cache, ProxyRegistry()) as stub:
            proxy = Proxy(stub.StreamAggregatedResources())
            sent = await handshake(proxy)

            assert cache.set_mesh(mesh(service("orders", "127.0.10.1", "127.0.10.3")))
            eds = await proxy.receive()
            assert types([eds]) == ["EDS"]
            assert addresses(eds, "orders") == [("127.0.10.1", 50051), ("127.0.10.3", 50051)]
            assert eds.version_info != sent["EDS"].version_info
            await proxy.send(request(EDS, ("orders",), ack=eds))
            assert await proxy.nothing_arrives(), "a type other than EDS was pushed"

    asyncio.run(scenario())


def test_a_nacked_response_is_offered_again_when_the_backoff_is_over() -> None:
    async def scenario() -> None:
        cache, registry = SnapshotCache(), ProxyRegistry()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(DiscoveryServer(cache, registry, backoff=NackBackoff(first=1.0, maximum=1.0)).handlers())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                proxy = Proxy(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources())
                await handshake(proxy)
                cache.set_mesh(mesh(service("orders", "127.0.10.1"), service("billing", "127.0.11.1")))
                rejected = await proxy.receive()
                assert types([rejected]) == ["CDS"]
                await proxy.send(request(CDS, nonce=rejected.nonce, error="cluster billing: bad"))
                routes = await proxy.receive()  # the routes waited for the clusters' answer
                assert types([routes]) == ["RDS"]
                await proxy.send(request(RDS, ("edge",), ack=routes))
                assert await proxy.nothing_arrives(), "resent before the backoff"
                again = await proxy.receive()  # the server wakes by itself when the backoff is over
                assert types([again]) == ["CDS"] and names(again) == names(rejected)
                (record,) = registry.proxies()
                assert (record.status(CDS).nacks, record.status(CDS).resends) == (1, 1)
                await proxy.send(request(CDS, ack=again))
                assert await proxy.nothing_arrives()
                assert record.status(CDS).acked_version == again.version_info and record.status(CDS).retry_at is None
        finally:
            await server.stop(0)

    asyncio.run(scenario())


def test_a_stream_that_fails_on_a_change_ends_and_the_others_get_the_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane.server.stream import SotwStream

    push = SotwStream.push

    def failing_for_edge_2(self: SotwStream, snapshot):  # type: ignore[no-untyped-def]
        if self.record.node_id == "edge-2" and self.subscription(EDS).nonce is not None:
            raise RuntimeError("boom")
        return push(self, snapshot)

    async def scenario() -> None:
        cache = SnapshotCache()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        async with serving(cache, ProxyRegistry()) as stub:
            first, second = Proxy(stub.StreamAggregatedResources()), Proxy(stub.StreamAggregatedResources())
            await handshake(first)
            await second.send(edge_request(CDS, node_id="edge-2"))
            cds = await second.receive()
            await second.send(request(CDS, ack=cds))
            await second.send(request(EDS, tuple(names(cds))))
            await second.receive()
            monkeypatch.setattr(SotwStream, "push", failing_for_edge_2)
            assert cache.set_mesh(mesh(service("orders", "127.0.10.1", "127.0.10.3")))  # publishing does not fail
            eds = await first.receive()
            assert addresses(eds, "orders") == [("127.0.10.1", 50051), ("127.0.10.3", 50051)]
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await second.receive()
            assert ended.value.code() is grpc.StatusCode.INTERNAL and "boom" in (ended.value.details() or "")

    asyncio.run(scenario())
