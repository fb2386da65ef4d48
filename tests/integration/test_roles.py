"""Edge, sidecars and a proxyless gRPC client, all from the local ECS, balancing per call."""

from __future__ import annotations

from typing import Any, Iterator

import grpc
import pytest

from controlplane.demo.stack import DemoStack, task_address
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc

from . import xds_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mesh() -> Iterator[DemoStack]:
    with DemoStack(cluster="roles", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service("b", stack.register(family="b", service="b", labels={"xds.route.hosts": "b.local"}), 2)
        stack.create_service("a", stack.register(family="a", service="a", labels={"xds.route.hosts": "a.local", "xds.upstreams": "b"}), 1)
        stack.wait_for_running("b", 2)
        stack.wait_for_running("a", 1)
        stack.start_control_plane()
        yield stack


def calls(target: str, authority: str, n: int) -> dict[str, int]:
    answered: dict[str, int] = {}
    options = [("grpc.default_authority", authority), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(n):
            address = stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5).served_by.address
            answered[address] = answered.get(address, 0) + 1
    return answered


def proxyless(stack: DemoStack, n: int, wait_for: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
    return xds_client.run(stack.grpc_client_bootstrap("client-a", "a"), "xds:///b", n, wait_for)


def even(answered: dict[str, int], tasks: set[str], n: int) -> bool:
    share = n / len(tasks)
    return set(answered) == tasks and all(abs(count - share) <= 0.1 * n for count in answered.values())


def test_edge_sidecars_and_proxyless_client_balance_per_call_and_all_see_scaling(mesh: DemoStack) -> None:
    b_tasks = mesh.addresses(mesh.running_tasks("b"))
    edge = mesh.start_envoy("edge-roles")
    sidecar_a = mesh.start_sidecar("sidecar-a", "a")
    b_task = sorted(mesh.running_tasks("b"), key=lambda t: t["taskArn"])[0]
    b_host, b_port = (task_address(b_task) or "").rsplit(":", 1)
    from controlplane.demo.processes import free_port

    inbound = free_port()
    sidecar_b = mesh.start_sidecar("sidecar-b", "b", inbound_port=inbound, inbound_address="127.0.0.1", app_port=int(b_port), app_address=b_host)
    edge.wait_for_hosts("b", b_tasks)
    sidecar_a.wait_for_hosts("b", b_tasks)

    # Edge: calls for b.local are balanced over B's tasks.
    assert even(calls(edge.target, "b.local", 100), b_tasks, 100)
    # A's sidecar: A calls B by name through its outbound listener, balanced per call.
    assert even(calls(sidecar_a.target, "b", 100), b_tasks, 100)
    # A's sidecar only knows what A declares it calls.
    assert not sidecar_a.hosts("a")
    # B's sidecar: its inbound listener fronts its own task; it calls nothing.
    assert calls(f"127.0.0.1:{inbound}", "b", 10) == {f"{b_host}:{b_port}": 10}
    assert not sidecar_b.hosts("b")
    # Proxyless gRPC client of A, dialling xds:///b: balanced per call without any proxy.
    result = proxyless(mesh, 100, b_tasks)
    assert not result["failures"], result
    assert even(result["answered"], b_tasks, 100), result

    # Scale B: every kind of client sees the new task.
    mesh.ecs.update_service(cluster=mesh.cluster, service="b", desiredCount=3)
    grown = mesh.addresses(mesh.wait_for_running("b", 3))
    edge.wait_for_hosts("b", grown)
    sidecar_a.wait_for_hosts("b", grown)
    assert set(calls(edge.target, "b.local", 60)) == grown
    assert set(calls(sidecar_a.target, "b", 60)) == grown
    result = proxyless(mesh, 90, grown)
    assert set(result["answered"]) == grown and not result["failures"], result
