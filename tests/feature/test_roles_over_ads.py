"""ECS views -> the real pipeline and server -> a grpcio ADS client per role, asserting on what
each proxy holds and on what a change sends it."""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Coroutine

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2

from controlplane.discovery.state import ClusterState, TaskDefinition
from unit.builders import cluster_state, task, task_definition

from .harness import CDS, EDGE, EDS, LDS, RDS, serving

pytestmark = pytest.mark.timeout(60)

ORDERS = task_definition("orders", 3, {"xds.service": "orders", "xds.route.prefix": "/orders.Orders/"})
WEB = task_definition("web", 1, {"xds.service": "web", "xds.protocol": "http1", "xds.route.hosts": "www.example.com"}, ports=(8080,))
CALLER = task_definition(
    "caller", 1, {"xds.service": "caller", "xds.route.enabled": "false", "xds.upstreams": "orders"}, ports=(8080,)
)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test body on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(scenario)
    def test() -> None:
        asyncio.run(scenario())

    return test


def view(*tasks: tuple[TaskDefinition, str, str] | tuple[TaskDefinition, str, str, dict[str, Any]]) -> ClusterState:
    """A cluster `prod` running (task definition, task id, address[, task() options]) ..."""
    built = [task(entry[0], entry[1], entry[2], **(entry[3] if len(entry) > 3 else {})) for entry in tasks]  # type: ignore[misc]
    definitions = list({entry[0].arn: entry[0] for entry in tasks}.values())
    return cluster_state(built, definitions)


@run
async def test_the_edge_gets_every_service_and_an_endpoint_change_sends_only_endpoints() -> None:
    async with serving() as pipeline:
        pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (ORDERS, "orders-2", "127.0.1.2"), (WEB, "web-1", "127.0.2.1")))
        async with pipeline.proxy("edge-1", EDGE) as edge:
            await edge.synced()
            assert edge.names() == {"CDS": ["orders", "web"], "EDS": ["orders", "web"], "LDS": ["edge"], "RDS": ["edge"]}
            assert edge.endpoints("orders") == [("127.0.1.1", 50051, "HEALTHY"), ("127.0.1.2", 50051, "HEALTHY")]
            assert edge.endpoints("web") == [("127.0.2.1", 8080, "HEALTHY")]
            hosts = {vh.name: [r.match.prefix for r in vh.routes] for vh in edge.routes("edge").virtual_hosts}
            # www.example.com's own "/" takes every call there: the wildcard's route is no fallback on it
            # (docs/labels.md, "Route ownership").
            assert hosts == {"_any_": ["/orders.Orders/"], "www.example.com": ["/"]}
            orders_cluster = edge.cluster("orders")

            pipeline.publish(
                view(
                    (ORDERS, "orders-1", "127.0.1.1"),
                    (ORDERS, "orders-2", "127.0.1.2"),
                    (ORDERS, "orders-3", "127.0.1.3"),
                    (WEB, "web-1", "127.0.2.1"),
                )
            )

            assert await edge.quiet() == [EDS]
            assert edge.endpoints("orders")[-1] == ("127.0.1.3", 50051, "HEALTHY")
            assert edge.cluster("orders") == orders_cluster


@run
async def test_a_stopping_task_is_announced_draining_then_dropped() -> None:
    async with serving() as pipeline:
        pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (ORDERS, "orders-2", "127.0.1.2")))
        async with pipeline.proxy("edge-1", EDGE) as edge:
            await edge.synced()
            pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (ORDERS, "orders-2", "127.0.1.2", {"desired_status": "STOPPED"})))
            await edge.until(lambda p: ("127.0.1.2", 50051, "DRAINING") in p.endpoints("orders"))
            pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1")))
            await edge.until(lambda p: p.endpoints("orders") == [("127.0.1.1", 50051, "HEALTHY")])


@run
async def test_a_malformed_label_disables_only_that_service() -> None:
    broken = task_definition("billing", 2, {"xds.service": "billing", "xds.port": "http"})
    async with serving() as pipeline:
        pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (broken, "billing-1", "127.0.3.1")))
        async with pipeline.proxy("edge-1", EDGE) as edge:
            await edge.synced()
            assert edge.names()["CDS"] == ["orders"]
            assert [p.service for p in pipeline.cache.mesh.problems] == ["billing"]  # type: ignore[union-attr]


@run
async def test_a_sidecar_gets_only_what_its_app_calls_and_a_listener_in_front_of_it() -> None:
    metadata = {
        "role": "sidecar", "service": "caller", "outbound_port": 15001,
        "inbound_address": "127.0.0.1", "inbound_port": 15000, "app_port": 8080,
    }
    async with serving() as pipeline:
        pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (WEB, "web-1", "127.0.2.1"), (CALLER, "caller-1", "127.0.4.1")))
        async with pipeline.proxy("caller-sidecar", metadata) as sidecar:
            await sidecar.synced()
            assert sidecar.names() == {"CDS": ["local_app", "orders"], "EDS": ["orders"], "LDS": ["inbound", "outbound"], "RDS": ["outbound"]}
            outbound = {vh.name: list(vh.domains) for vh in sidecar.routes("outbound").virtual_hosts}
            assert outbound == {"orders": ["orders"], "_any_": ["*"]}
            local_app = sidecar.cluster("local_app").load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
            assert (local_app.address, local_app.port_value) == ("127.0.0.1", 8080)
            inbound = sidecar.listener("inbound")
            assert (inbound.address.socket_address.address, inbound.address.socket_address.port_value) == ("127.0.0.1", 15000)

            # A change to a service the app does not call sends the sidecar nothing.
            pipeline.publish(
                view((ORDERS, "orders-1", "127.0.1.1"), (WEB, "web-1", "127.0.2.1"), (WEB, "web-2", "127.0.2.2"), (CALLER, "caller-1", "127.0.4.1"))
            )
            assert await sidecar.quiet() == []
            # A change to one it calls sends the endpoints only.
            pipeline.publish(view((ORDERS, "orders-2", "127.0.1.2"), (WEB, "web-1", "127.0.2.1"), (CALLER, "caller-1", "127.0.4.1")))
            assert await sidecar.quiet() == [EDS]
            assert sidecar.endpoints("orders") == [("127.0.1.2", 50051, "HEALTHY")]


@run
async def test_a_proxyless_grpc_client_resolves_its_target_from_listener_to_endpoints() -> None:
    two_zones = view(
        (ORDERS, "orders-1", "127.0.1.1"),
        (ORDERS, "orders-2", "127.0.1.2", {"zone": "eu-west-1b"}),
        (ORDERS, "orders-3", "127.0.1.3", {"zone": "eu-west-1b"}),
        (CALLER, "caller-1", "127.0.4.1"),
    )
    async with serving() as pipeline:
        pipeline.publish(two_zones)
        async with pipeline.proxy("caller-client", {"role": "grpc-client", "service": "caller"}, targets=("orders",)) as client:
            await client.synced()
            assert client.received[0] is LDS
            assert client.names() == {"CDS": ["orders"], "EDS": ["orders"], "LDS": ["orders"], "RDS": ["orders"]}
            manager = hcm_pb2.HttpConnectionManager()
            assert client.listener("orders").api_listener.api_listener.Unpack(manager)
            assert manager.rds.route_config_name == "orders"
            assert [f.name for f in manager.http_filters] == ["envoy.filters.http.router"]
            weights = [(loc.locality.zone, loc.load_balancing_weight.value) for loc in client.held[EDS]["orders"].endpoints]
            assert weights == [("eu-west-1a", 1), ("eu-west-1b", 2)]


@run
async def test_every_role_is_served_from_one_memo_that_reports_its_size() -> None:
    async with serving() as pipeline:
        pipeline.publish(view((ORDERS, "orders-1", "127.0.1.1"), (CALLER, "caller-1", "127.0.4.1")))
        async with pipeline.proxy("edge-1", EDGE) as edge, pipeline.proxy("caller-sidecar", {"role": "sidecar", "service": "caller"}) as sidecar:
            await edge.synced()
            await sidecar.synced()
            assert edge.cluster("orders") == sidecar.cluster("orders")
            assert CDS in edge.received and RDS in sidecar.received
            assert pipeline.memo.size_bytes() > 0
