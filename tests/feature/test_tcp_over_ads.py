"""TCP services through the real pipeline and server: what an edge and a sidecar hold over ADS, and
what a change sends them (docs/labels.md, "TCP services")."""

from __future__ import annotations

import pytest
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from unit.builders import task_definition

from .harness import EDGE, EDS, serving
from .test_roles_over_ads import run, view

pytestmark = pytest.mark.timeout(60)

CACHE = {"xds.service": "cache", "xds.protocol": "tcp", "xds.route.port": "16379"}
CACHE_1 = task_definition("cache", 1, CACHE, ports=(6379,))
CACHE_2 = task_definition("cache", 2, {**CACHE, "xds.route.port": "16380"}, ports=(6379,))
CALLER = task_definition("caller", 1, {"xds.service": "caller", "xds.route.enabled": "false", "xds.upstreams": "cache"})
SIDECAR = {"role": "sidecar", "service": "caller", "outbound_address": "127.0.0.1", "outbound_port": 15001}


def port_and_cluster(listener: object) -> tuple[int, str]:
    proxy = tcp_proxy_pb2.TcpProxy()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(proxy)  # type: ignore[attr-defined]
    return listener.address.socket_address.port_value, proxy.cluster  # type: ignore[attr-defined]


@run
async def test_a_tcp_service_gets_a_listener_at_the_edge_and_in_its_callers_sidecars() -> None:
    async with serving() as pipeline:
        pipeline.publish(view((CACHE_1, "cache-1", "127.0.1.1"), (CALLER, "caller-1", "127.0.2.1")))
        async with pipeline.proxy("edge-1", EDGE) as edge, pipeline.proxy("sidecar-1", SIDECAR) as sidecar:
            await edge.synced()
            await sidecar.synced()
            assert edge.names()["LDS"] == ["edge", "tcp/cache"]
            assert port_and_cluster(edge.listener("tcp/cache")) == (16379, "cache")
            assert sidecar.names()["LDS"] == ["outbound", "tcp/cache"]
            assert port_and_cluster(sidecar.listener("tcp/cache")) == (16379, "cache")
            assert sidecar.endpoints("cache") == [("127.0.1.1", 6379, "HEALTHY")]

            # A new task: endpoints only, the listeners stay as they are.
            pipeline.publish(view((CACHE_1, "cache-1", "127.0.1.1"), (CACHE_1, "cache-2", "127.0.1.2"), (CALLER, "caller-1", "127.0.2.1")))
            assert await edge.quiet() == [EDS]
            assert edge.endpoints("cache") == [("127.0.1.1", 6379, "HEALTHY"), ("127.0.1.2", 6379, "HEALTHY")]

            # A revision on another port: every proxy listens there instead.
            pipeline.publish(view((CACHE_2, "cache-3", "127.0.1.3"), (CALLER, "caller-1", "127.0.2.1")))
            await edge.until(lambda p: port_and_cluster(p.listener("tcp/cache"))[0] == 16380)
            await sidecar.until(lambda p: port_and_cluster(p.listener("tcp/cache"))[0] == 16380)
