"""Ownership in a shared account, with real parts: local ECS tasks, the control plane, a real Envoy
and real gRPC calls. A wildcard service with the highest priority, a newcomer claiming an
established host with a catch-all route, and another task-definition family declaring an
established service with other settings: none of them takes calls from the established service.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="ownership", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        # The wildcard starts first: being established does not let it take an explicit host.
        wild = {"xds.route.prefix": "/", "xds.route.priority": "1000"}
        stack.create_service("wild", stack.register(family="wild", service="wild", labels=wild), 1)
        stack.wait_for_running("wild", 1)
        stack.create_service("orders", stack.register(family="orders", service="orders", labels={"xds.route.hosts": "orders.local"}), 1)
        stack.wait_for_running("orders", 1)
        time.sleep(1.1)  # ECS startedAt: the newcomers start strictly later than orders
        # A newcomer claiming orders' host with a catch-all route of the highest priority.
        grabber = {"xds.route.hosts": "orders.local", "xds.route.prefix": "/", "xds.route.priority": "1000"}
        stack.create_service("grabber", stack.register(family="grabber", service="grabber", labels=grabber), 1)
        # Another family declaring service `orders` over HTTP/1.1 (gRPC calls to it would fail).
        intruder = {"xds.route.hosts": "orders.local", "xds.protocol": "http1"}
        stack.create_service("intruder", stack.register(family="intruder", service="orders", labels=intruder), 1)
        for name in ("grabber", "intruder"):
            stack.wait_for_running(name, 1)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-ownership")
    envoy.wait_for_hosts("orders", _addresses(stack, "orders"), timeout=30)
    envoy.wait_for_hosts("wild", _addresses(stack, "wild"), timeout=30)
    return envoy


def _addresses(stack: DemoStack, ecs_service: str) -> set[str]:
    return stack.addresses(stack.running_tasks(ecs_service))


def _calls(envoy: EnvoyProcess, host: str, n: int) -> tuple[Counter[str], Counter[grpc.StatusCode]]:
    answered: Counter[str] = Counter()
    failed: Counter[grpc.StatusCode] = Counter()
    options = [("grpc.default_authority", host), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(envoy.target, options=options) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(n):
            try:
                answered[stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5).served_by.address] += 1
            except grpc.RpcError as error:
                failed[error.code()] += 1
    return answered, failed


def _services(stack: DemoStack) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "services", "--json", "--admin", stack.admin_target],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return {s["name"]: s for s in json.loads(result.stdout)["services"]}


def test_calls_to_an_established_host_reach_only_its_owner(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (orders,) = _addresses(stack, "orders")

    answered, failed = _calls(envoy, "orders.local", 40)

    # Not the wildcard (priority 1000), not the grabber (priority 1000 on the same host), not the intruder.
    assert answered == Counter({orders: 40}) and not failed, (answered, failed)


def test_the_wildcard_still_serves_hosts_nobody_named(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (wild,) = _addresses(stack, "wild")
    answered, failed = _calls(envoy, "anything.local", 10)
    assert answered == Counter({wild: 10}) and not failed, (answered, failed)


def test_envoy_gets_the_owner_first_and_nothing_of_the_refused(stack: DemoStack, envoy: EnvoyProcess) -> None:
    dump = envoy.config_dump()
    (routes,) = [
        c["route_config"] for c in dump["configs"] if c["@type"].endswith("RoutesConfigDump") for c in c.get("dynamic_route_configs", [])
    ]
    hosts = {vh["name"]: [r["name"] for r in vh["routes"]] for vh in routes["virtual_hosts"]}
    assert hosts == {"_any_": ["wild"], "orders.local": ["orders", "wild"]}
    clusters = {line.split("::")[0] for line in envoy.admin("/clusters").splitlines()}
    assert "grabber" not in clusters
    # The orders cluster holds orders' task only and still speaks HTTP/2 (gRPC).
    assert set(envoy.hosts("orders")) == _addresses(stack, "orders")
    (orders_cluster,) = [
        c["cluster"] for c in dump["configs"] if c["@type"].endswith("ClustersConfigDump")
        for c in c.get("dynamic_active_clusters", []) if c["cluster"]["name"] == "orders"
    ]
    options = orders_cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]


def test_the_admin_api_names_both_task_definitions_of_each_refusal(stack: DemoStack, envoy: EnvoyProcess) -> None:
    services = _services(stack)

    assert services["grabber"]["state"] == "disabled"
    (conflict,) = services["grabber"]["problems"]
    assert conflict["kind"] == "route_conflict" and conflict["label"] == "xds.route.priority"
    assert "grabber:1" in conflict["message"] and "orders:1" in conflict["message"]
    (takeover,) = [p for p in services["orders"]["problems"] if p["kind"] == "family_conflict"]
    assert takeover["task_definition"] == "intruder:1" and takeover["severity"] == "error"
    assert "family 'orders' (orders:1)" in takeover["message"] and "family 'intruder'" in takeover["message"]
    assert services["orders"]["state"] == "serving" and services["orders"]["declared_by"] == "orders:1"
