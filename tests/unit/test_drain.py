"""Rebalancing and draining, over real gRPC connections on loopback: a draining replica refuses
new streams and closes its open ones one by one with UNAVAILABLE (what proxies retry on); a
maximum connection age ends a connection's streams so the proxy reconnects (through an NLB, to
any replica)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc

from controlplane.admin.event_bus import EventBus
from controlplane.admin.metrics import Metrics
from controlplane.admin.telemetry import Telemetry
from controlplane.cache.store import SnapshotCache
from controlplane.server.ads import DiscoveryServer
from controlplane.server.drain import StreamDrain
from controlplane.server.options import xds_server_options
from controlplane.server.registry import ProxyRegistry

from .test_ads import Proxy, edge_request
from .xds import CDS, mesh, service, types

pytestmark = pytest.mark.timeout(120)


def test_the_drain_closes_streams_one_by_one_over_its_period() -> None:
    async def scenario() -> None:
        drain = StreamDrain()
        loop = asyncio.get_running_loop()
        closed_at: dict[int, float] = {}
        for stream_id in range(8):
            drain.register(stream_id, lambda i=stream_id: closed_at.__setitem__(i, loop.time()))
        drain.unregister(7)  # a stream that ended on its own is not closed again
        started = loop.time()
        assert await drain.drain(0.7) == 7
        assert drain.draining and len(drain) == 0 and sorted(closed_at) == list(range(7))
        times = sorted(closed_at.values())
        # Evenly spread: the k-th close comes no earlier than k/7 of the period (sleeps never end early).
        for k, at in enumerate(times):
            assert at - started >= 0.7 * k / 7 - 0.001

    asyncio.run(scenario())


def test_a_draining_server_refuses_new_streams_and_ends_open_ones_with_unavailable() -> None:
    async def scenario() -> None:
        cache, registry, metrics = SnapshotCache(), ProxyRegistry(), Metrics()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        drain = StreamDrain()
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(DiscoveryServer(cache, registry, Telemetry(metrics, EventBus()), drain=drain).handlers())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(3)]
        try:
            proxies = []
            for i, channel in enumerate(channels):
                proxy = Proxy(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources())
                await proxy.send(edge_request(CDS, node_id=f"edge-{i}"))
                assert types([await proxy.receive()]) == ["CDS"]
                proxies.append(proxy)
            assert len(drain) == 3 and len(registry.proxies()) == 3

            assert await drain.drain(0.3) == 3
            for proxy in proxies:
                with pytest.raises(grpc.aio.AioRpcError) as ended:
                    await proxy.receive()
                assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "draining" in (ended.value.details() or "")
            for _ in range(100):  # the server's side of a stream ends just after the client sees it end
                if not registry.proxies():
                    break
                await asyncio.sleep(0.05)
            assert registry.proxies() == [] and len(drain) == 0

            late = Proxy(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channels[0]).StreamAggregatedResources())
            await late.send(edge_request(CDS, node_id="late"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await late.receive()
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert metrics.refused_streams.labels(reason="draining")._value.get() == 1
            assert cache.live_roles == 0  # the refused stream never held a role
        finally:
            for channel in channels:
                await channel.close()
            await server.stop(0)

    asyncio.run(scenario())


def test_an_aged_connection_ends_its_stream_and_the_proxy_reconnects() -> None:
    async def scenario() -> None:
        cache, registry = SnapshotCache(), ProxyRegistry()
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        server = grpc.aio.server(options=xds_server_options(max_connection_age_seconds=0.5, max_connection_age_grace_seconds=0.5))
        server.add_generic_rpc_handlers(DiscoveryServer(cache, registry).handlers())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        try:
            proxy = Proxy(stub.StreamAggregatedResources())
            await proxy.send(edge_request(CDS))
            assert types([await proxy.receive()]) == ["CDS"]
            # GOAWAY after ~0.5 s (+-10 %), the stream cut after the 0.5 s grace: it ends, not hangs.
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(proxy.call.read(), 30)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            # The channel opens a new connection; the same node is served again from the cache.
            again = Proxy(stub.StreamAggregatedResources())
            await again.send(edge_request(CDS))
            assert types([await again.receive()]) == ["CDS"]
        finally:
            await channel.close()
            await server.stop(0)

    asyncio.run(scenario())


def test_connection_age_options_only_when_set() -> None:
    assert not any(name.startswith("grpc.max_connection_age") for name, _ in xds_server_options())
    options = dict(xds_server_options(max_connection_age_seconds=1800, max_connection_age_grace_seconds=30))
    assert options["grpc.max_connection_age_ms"] == 1_800_000 and options["grpc.max_connection_age_grace_ms"] == 30_000
