"""Zone-aware balancing with real parts: a local ECS in two zones, the control plane, Envoy
sidecars and an edge that know their zone and their own fleet, and real gRPC calls; each call's
answer names the task that served it.

`caller` (the fleet the proxies belong to) has one task per zone. `backend` (six standalone tasks,
three per zone) is zone-aware with `xds.lb.zone-min-tasks=2`; the same tasks also serve `plain`
(indexed labels), which is not zone-aware. With as many backend tasks in a zone as the caller fleet
has there, Envoy keeps every call in the proxy's zone; once most of zone A's backend tasks are
gone, it sends only the share zone A can carry there and spills the rest to zone B.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack, routeguide_task_definition, task_address
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.proxy.bootstrap import LOCAL_CLUSTER, ProxyOptions, XdsAddress, edge_bootstrap

pytestmark = pytest.mark.integration

ZONE_A, ZONE_B = "us-east-1a", "us-east-1b"
CALLS = 60


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="zones", poll_interval=0.5, local_ecs_args=["--zones", f"{ZONE_A},{ZONE_B}"]) as stack:
        stack.start_local_ecs()
        stack.create_service("caller", stack.register(family="caller", service="caller", labels={"xds.upstreams": "backend,plain"}), 2)
        backend = routeguide_task_definition(
            "backend",
            service="backend",
            labels={
                "xds.route.hosts": "backend.local",
                "xds.lb.locality": "zone-aware",
                "xds.lb.zone-min-tasks": "2",
                "xds.1.service": "plain",
                "xds.1.port": "50051",
                "xds.1.route.hosts": "plain.local",
            },
        )
        arn = stack.ecs.register_task_definition(**backend)["taskDefinition"]["taskDefinitionArn"]
        # Standalone tasks: a stopped one is not replaced, so the test decides how many each zone keeps.
        stack.ecs.run_task(
            cluster=stack.cluster, taskDefinition=arn, count=6, launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-local"], "assignPublicIp": "DISABLED"}},
        )
        stack.wait_for_running("caller", 2)
        _wait_for_backend(stack, 6)
        stack.start_control_plane()
        yield stack


def _wait_for_backend(stack: DemoStack, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        tasks = [t for t in stack.running_tasks() if t["group"] == "family:backend" and t["desiredStatus"] == "RUNNING"]
        if len(tasks) == count or time.monotonic() > deadline:
            assert len(tasks) == count, f"expected {count} running backend tasks, have {len(tasks)}"
            return tasks
        time.sleep(0.1)


def _by_zone(tasks: list[dict[str, Any]]) -> dict[str, set[str]]:
    zones: dict[str, set[str]] = {}
    for task in tasks:
        zones.setdefault(task["availabilityZone"], set()).add(task_address(task) or "")
    return zones


def _calls(target: str, authority: str, n: int = CALLS) -> Counter[str]:
    """n sequential GetFeature calls: answers per task address (every call must succeed)."""
    options = [("grpc.default_authority", authority), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    answered: Counter[str] = Counter()
    with grpc.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(n):
            answered[stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5).served_by.address] += 1
    return answered


def _in(answered: Counter[str], addresses: set[str]) -> int:
    return sum(count for address, count in answered.items() if address in addresses)


@pytest.fixture(scope="module")
def proxies(stack: DemoStack) -> dict[str, EnvoyProcess]:
    """Zone-aware sidecars of `caller` in zone A and B, and an edge in zone A whose fleet is `caller`."""
    fleet = stack.addresses(stack.running_tasks("caller"))
    sidecars = {
        zone: stack.start_sidecar(f"caller-{zone}", "caller", proxy=ProxyOptions(zone=zone, local_service="caller"))
        for zone in (ZONE_A, ZONE_B)
    }
    port = free_port()
    config = edge_bootstrap(
        node_id="edge-zone-a", xds=[XdsAddress("127.0.0.1", stack.xds_port)], listen_address="127.0.0.1", listen_port=port,
        proxy=ProxyOptions(zone=ZONE_A, local_service="caller"),
    )
    edge = EnvoyProcess("edge-zone-a", stack.xds_port, stack.work_dir, listen_port=port, config=config)
    stack.envoys.append(edge)
    edge.start()
    backend = stack.addresses(_wait_for_backend(stack, 6))
    for envoy in (*sidecars.values(), edge):
        envoy.wait_for_hosts(LOCAL_CLUSTER, fleet, timeout=30)
        envoy.wait_for_hosts("backend", backend, timeout=30)
        envoy.wait_for_hosts("plain", backend, timeout=30)
    edge.process.wait_until(edge.listener_active, 30, "the edge listener")
    return {"a": sidecars[ZONE_A], "b": sidecars[ZONE_B], "edge": edge}


def test_calls_stay_in_the_proxys_zone_while_it_has_enough_tasks_and_spill_over_when_it_has_not(
    stack: DemoStack, proxies: dict[str, EnvoyProcess]
) -> None:
    zones = _by_zone(_wait_for_backend(stack, 6))
    assert {zone: len(addresses) for zone, addresses in zones.items()} == {ZONE_A: 3, ZONE_B: 3}  # the local ECS's spread
    assert {t["availabilityZone"] for t in stack.running_tasks("caller")} == {ZONE_A, ZONE_B}

    # Healthy and enough: each zone's proxies call only their own zone's tasks, and spread over them.
    in_a = _calls(proxies["a"].target, "backend")
    assert set(in_a) == zones[ZONE_A], in_a
    in_b = _calls(proxies["b"].target, "backend")
    assert set(in_b) == zones[ZONE_B], in_b
    at_edge = _calls(proxies["edge"].target, "backend.local")
    assert set(at_edge) == zones[ZONE_A], at_edge
    # A service that is not zone-aware is spread over both zones by the same proxies.
    plain = _calls(proxies["a"].target, "plain")
    assert _in(plain, zones[ZONE_A]) > 0 and _in(plain, zones[ZONE_B]) > 0, plain

    # Too few: zone A keeps one of three tasks (a quarter of the healthy tasks for half of the
    # fleet), so Envoy sends about half of zone A's calls there and the rest to zone B.
    kept = sorted(zones[ZONE_A])[0]
    for task in stack.running_tasks():
        if task_address(task) in zones[ZONE_A] - {kept}:
            stack.ecs.stop_task(cluster=stack.cluster, task=task["taskArn"], reason="zone test")
    remaining = {kept} | zones[ZONE_B]
    for envoy in proxies.values():
        envoy.wait_for_hosts("backend", remaining, timeout=30)
    spilled = _calls(proxies["a"].target, "backend")
    assert set(spilled) <= remaining, spilled
    assert spilled[kept] > 0 and _in(spilled, zones[ZONE_B]) > 0, spilled
    # Zone B still has all it needs: its calls stay there.
    assert set(_calls(proxies["b"].target, "backend")) == zones[ZONE_B]
