"""Roles are bounded: a client inventing roles is refused beyond the cap, and a role's snapshot
goes when its last stream leaves. Over a real gRPC connection on loopback."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc
from prometheus_client import generate_latest

from controlplane.admin.event_bus import EventBus
from controlplane.admin.metrics import Metrics
from controlplane.admin.telemetry import Telemetry
from controlplane.cache.store import SnapshotCache
from controlplane.server.ads import DiscoveryServer
from controlplane.server.registry import ProxyRegistry

from .test_ads import Proxy, edge_request
from .xds import CDS, mesh, service, types

pytestmark = pytest.mark.timeout(120)
CAP = 40
ROLES = 5_000


def role_series(metrics: Metrics) -> int:
    text = generate_latest(metrics.registry).decode()
    return sum(1 for line in text.splitlines() if line.startswith("controlplane_connected_proxies{"))


def test_5000_roles_from_one_client_are_capped_and_dropped_when_their_streams_leave() -> None:
    async def scenario() -> None:
        cache, registry, metrics = SnapshotCache(max_roles=CAP), ProxyRegistry(), Metrics()
        metrics.track_cache(cache)
        cache.set_mesh(mesh(service("orders", "127.0.10.1")))
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(DiscoveryServer(cache, registry, Telemetry(metrics, EventBus())).handlers())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        try:
            # One client, one edge role per listen port: the first CAP are served...
            served = []
            for i in range(CAP):
                proxy = Proxy(stub.StreamAggregatedResources())
                await proxy.send(edge_request(CDS, listen_port=20000 + i, node_id=f"flood-{i}"))
                assert types([await proxy.receive()]) == ["CDS"]
                served.append(proxy)
            assert (cache.live_roles, cache.snapshots) == (CAP, CAP)

            # ...and every further one is refused, in batches of concurrent streams.
            async def refused(i: int) -> tuple[grpc.StatusCode, str]:
                call = stub.StreamAggregatedResources()
                await call.write(edge_request(CDS, listen_port=20000 + i, node_id=f"flood-{i}"))
                try:
                    await call.read()
                except grpc.aio.AioRpcError as error:
                    return error.code(), error.details() or ""
                raise AssertionError(f"role {i} was served beyond the cap")

            outcomes = []
            for start in range(CAP, ROLES, 1000):
                outcomes += await asyncio.gather(*(refused(i) for i in range(start, min(start + 1000, ROLES))))
            assert {code for code, _ in outcomes} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert outcomes[0][1] == (
                f"node 'flood-{CAP}': role 'edge/127.0.0.1:{20000 + CAP}' would be live role {CAP + 1}; "
                f"this control plane serves at most {CAP} roles at once (--xds-max-roles)"
            )
            # The cache's own size and the registry stayed at the cap; the metric is labelled by role kind.
            assert (cache.live_roles, cache.snapshots) == (CAP, CAP)
            assert len(registry.proxies()) == CAP and role_series(metrics) == 1
            assert metrics.refused_streams.labels(reason="role_limit")._value.get() == ROLES - CAP
            # A change rebuilds the live roles only.
            cache.set_mesh(mesh(service("orders", "127.0.10.2")))
            assert cache.snapshots == CAP

            # A role goes with its last stream, snapshot and all; the room is free again.
            for proxy in served:
                proxy.call.cancel()
            for _ in range(200):
                if cache.live_roles == 0 and not registry.proxies():
                    break
                await asyncio.sleep(0.02)
            assert (cache.live_roles, cache.snapshots, role_series(metrics)) == (0, 0, 1)
            again = Proxy(stub.StreamAggregatedResources())
            await again.send(edge_request(CDS, listen_port=29999, node_id="later"))
            assert types([await again.receive()]) == ["CDS"]
            assert cache.live_roles == 1
        finally:
            await channel.close()
            await server.stop(0)

    asyncio.run(scenario())


def test_streams_of_one_role_share_it_until_the_last_leaves() -> None:
    cache = SnapshotCache(max_roles=1)
    cache.set_mesh(mesh(service("orders", "127.0.10.1")))
    from controlplane.errors import RoleLimitError
    from controlplane.proxy.roles import EdgeRole

    edge, other = EdgeRole("127.0.0.1", 10000), EdgeRole("127.0.0.1", 10001)
    one, two, three = (lambda: None), (lambda: None), (lambda: None)
    cache.acquire(edge, one)
    cache.acquire(edge, two)
    assert cache.snapshot(edge) is not None and cache.snapshots == 1
    with pytest.raises(RoleLimitError):
        cache.acquire(other, three)
    assert cache.snapshot(other) is not None and cache.snapshots == 1  # built for the caller, not kept
    cache.release(edge, one)
    assert (cache.live_roles, cache.snapshots) == (1, 1)
    cache.release(edge, two)
    assert (cache.live_roles, cache.snapshots) == (0, 0)
    cache.acquire(other, three)
    assert cache.live_roles == 1


def test_a_change_wakes_only_the_streams_whose_role_snapshot_changed() -> None:
    from controlplane.proxy.roles import SidecarRole

    cache = SnapshotCache()
    a = dataclasses.replace(service("a", "127.0.10.1"), upstreams=("b",))
    c = dataclasses.replace(service("c", "127.0.10.3"), upstreams=("d",))
    cache.set_mesh(mesh(a, service("b", "127.0.10.2"), c, service("d", "127.0.10.4")))
    woken: list[str] = []
    for name in ("a", "c"):
        role = SidecarRole(service=name)
        cache.acquire(role, lambda name=name: woken.append(name))  # type: ignore[misc]
        assert cache.snapshot(role) is not None
    cache.set_mesh(mesh(a, service("b", "127.0.10.2"), c, service("d", "127.0.10.4", "127.0.10.5")))
    assert woken == ["c"]
    cache.set_mesh(mesh(a, service("b", "127.0.10.2"), c, service("d", "127.0.10.4", "127.0.10.5"), service("e", "127.0.10.6")))
    assert woken == ["c"], "a service nobody calls woke a sidecar"
