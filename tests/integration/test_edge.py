"""The whole path with real parts: local ECS (real processes) -> control plane -> real Envoy ->
real gRPC calls. Assertions are on what users see: calls per task, Envoy's admin endpoints,
the control plane's log."""

from __future__ import annotations

import socket
import time

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.nlb import run_in_thread
from controlplane.demo.stack import DemoStack, task_address
from controlplane.demo.traffic import SteadyTraffic
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.client import count_calls, exercise_all_kinds

pytestmark = pytest.mark.integration

SERVICE = "routeguide"


def test_envoy_balances_each_call_while_a_connection_balancer_pins_them(two_tasks: set[str], envoy: EnvoyProcess) -> None:
    per_call = count_calls(envoy.target, 100)
    assert per_call.failed == 0
    assert set(per_call.by_address) == two_tasks
    assert all(45 <= per_call.by_address[address] <= 55 for address in two_tasks), per_call.by_address

    backends = [(a.split(":")[0], int(a.split(":")[1])) for a in sorted(two_tasks)]
    with run_in_thread("127.0.0.1", 0, backends) as balancer:
        per_connection = count_calls(f"127.0.0.1:{balancer.port}", 100)
    assert per_connection.failed == 0
    assert sorted(per_connection.by_address.values()) == [100]


def test_all_four_rpc_kinds_work_through_envoy(two_tasks: set[str], envoy: EnvoyProcess) -> None:
    served = exercise_all_kinds(envoy.target)
    assert set(served) == {"GetFeature", "ListFeatures", "RecordRoute", "RouteChat"}
    for method, served_by in served.items():
        assert served_by.address in two_tasks, method
        assert served_by.task_id, method


def test_envoy_accepted_http2_eds_cluster_and_grpc_route(two_tasks: set[str], envoy: EnvoyProcess) -> None:
    dump = envoy.config_dump()
    clusters = [
        c["cluster"]
        for section in dump["configs"]
        if section["@type"].endswith("ClustersConfigDump")
        for c in section.get("dynamic_active_clusters", [])
    ]
    cluster = next(c for c in clusters if c["name"] == SERVICE)
    assert cluster["type"] == "EDS"
    options = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert "http2_protocol_options" in options["explicit_http_config"]
    routes = [
        r["route_config"]
        for section in dump["configs"]
        if section["@type"].endswith("RoutesConfigDump")
        for r in section.get("dynamic_route_configs", [])
    ]
    prefixes = [route["match"]["prefix"] for vh in routes[0]["virtual_hosts"] for route in vh["routes"]]
    assert "/routeguide.RouteGuide/" in prefixes
    # Versions are content hashes, not counters.
    versions = [s.get("version_info", "") for s in dump["configs"] if s["@type"].endswith("ClustersConfigDump")]
    assert versions and len(versions[0]) == 16 and versions[0] != "1"


def test_task_added_through_boto3_receives_calls(stack: DemoStack, two_tasks: set[str], envoy: EnvoyProcess) -> None:
    traffic = SteadyTraffic(envoy.target, max_seconds=40).start()
    try:
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
        running = stack.wait_for_running(SERVICE, 3)
        new_task = next(t for t in running if task_address(t) not in two_tasks)
        first_call = traffic.wait_for_address(task_address(new_task) or "", timeout=10)
    finally:
        report = traffic.stop()
    assert first_call is not None, f"the new task never answered; answers: {dict(report.by_address)}"
    assert first_call - new_task["startedAt"].timestamp() < 5.0
    assert report.failed == 0, report.failures[:5]


def test_stopped_task_drains_and_stops_receiving_new_calls(stack: DemoStack, two_tasks: set[str], envoy: EnvoyProcess) -> None:
    victim = sorted(stack.running_tasks(SERVICE), key=lambda t: t["taskArn"])[0]
    victim_address = task_address(victim) or ""
    traffic = SteadyTraffic(envoy.target, max_seconds=60).start()
    try:
        time.sleep(0.3)
        stack.ecs.stop_task(cluster=stack.cluster, task=victim["taskArn"], reason="integration test")
        # While ECS deactivates the task, Envoy must already have it as draining (no new calls).
        envoy.process.wait_until(
            lambda: "draining" in envoy.hosts(SERVICE).get(victim_address, "") or victim_address not in envoy.hosts(SERVICE),
            timeout=2.0,
            what=f"{victim_address} draining in Envoy",
        )
        before = traffic.report().by_address[victim_address]
        time.sleep(1.0)
        after = traffic.report().by_address[victim_address]
        stack.wait_for_stopped(victim["taskArn"], timeout=30)
        time.sleep(0.5)
    finally:
        report = traffic.stop()
    assert after - before <= 1, "a draining task kept receiving new calls"  # one call may have been in flight
    assert report.failed == 0, report.failures[:5]
    stack.wait_for_running(SERVICE, 2)  # the service scheduler replaces the stopped task


def test_malformed_label_disables_only_that_service(stack: DemoStack, two_tasks: set[str], envoy: EnvoyProcess) -> None:
    broken = stack.register(family="broken", service="broken", labels={"xds.port": "http", "xds.route.hosts": "broken.local"})
    stack.create_service("broken", broken, 1)
    stack.wait_for_running("broken", 1)
    deadline = time.monotonic() + 10
    invalid = []
    while not invalid and time.monotonic() < deadline:
        invalid = [e for e in stack.control_plane_log() if e.get("event") == "labels.invalid" and e.get("service") == "broken"]
        time.sleep(0.2)
    assert invalid, "no labels.invalid event for the broken service"
    event = invalid[0]
    assert event["label"] == "xds.port" and event["value"] == "http"
    assert "broken:1" in event["error"] and "expected an integer 1-65535" in event["error"]
    assert "broken" not in envoy.hosts("broken") and all(not line.startswith("broken::") for line in envoy.admin("/clusters").splitlines())
    per_call = count_calls(envoy.target, 20)
    assert per_call.failed == 0 and set(per_call.by_address) <= two_tasks
    stack.ecs.delete_service(cluster=stack.cluster, service="broken", force=True)


def test_bridge_mode_tasks_are_reached_on_their_dynamic_host_ports(stack: DemoStack, envoy: EnvoyProcess) -> None:
    bridge = stack.register(family="bridged", service="bridged", network_mode="bridge", labels={"xds.route.hosts": "bridged.local"})
    stack.ecs.create_service(cluster=stack.cluster, serviceName="bridged", taskDefinition=bridge, desiredCount=2, launchType="EC2")
    tasks = stack.wait_for_running("bridged", 2)
    host_ports = {c["networkBindings"][0]["hostPort"] for t in tasks for c in t["containers"]}
    assert all(port != 50051 for port in host_ports)
    deadline = time.monotonic() + 10
    while len(envoy.healthy_hosts("bridged")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    hosts = envoy.healthy_hosts("bridged")
    assert {int(h.rsplit(":", 1)[1]) for h in hosts} == host_ports
    answered: dict[str, int] = {}
    with grpc.insecure_channel(envoy.target, options=[("grpc.default_authority", "bridged.local:8443"), ("grpc.enable_http_proxy", 0)]) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(40):
            feature = stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5)
            answered[feature.served_by.address] = answered.get(feature.served_by.address, 0) + 1
    assert set(answered) == hosts
    stack.ecs.delete_service(cluster=stack.cluster, service="bridged", force=True)


def test_nacked_listener_is_reported_and_not_resent_on_changes(stack: DemoStack, two_tasks: set[str]) -> None:
    # A port already taken (without SO_REUSEPORT) makes Envoy reject our listener: a real NACK.
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        taken_port = blocker.getsockname()[1]
        stack.start_envoy("edge-nack", listen_port=taken_port)
        deadline = time.monotonic() + 15
        nacks: list[dict] = []
        while not nacks and time.monotonic() < deadline:
            nacks = [e for e in stack.control_plane_log() if e.get("event") == "xds.nack" and e.get("node_id") == "edge-nack"]
            time.sleep(0.2)
        assert nacks, "Envoy's NACK was not reported"
        assert nacks[0]["type"] == "LDS" and str(taken_port) in nacks[0]["error"]
        # Change the world (scale) so that the control plane pushes again: EDS moves; LDS is offered
        # again only when its backoff is over (10 s, then 20 s...), each time logged as a resend.
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
        stack.wait_for_running(SERVICE, 3)
        time.sleep(2.0)
        # What the admin API says was sent to the NACKing proxy, per type.
        with grpc.insecure_channel(stack.admin_target, options=[("grpc.enable_http_proxy", 0)]) as channel:
            proxies = admin_pb2_grpc.AdminStub(channel).ListProxies(api.ListProxiesRequest(), timeout=10).proxies
        sent = {t.type: t for p in proxies if p.node_id == "edge-nack" for t in p.types}
        assert all(t.resends == 0 for name, t in sent.items() if name != "LDS"), sent
        assert sent["LDS"].responses_sent == 1 + sent["LDS"].resends, sent
        assert sent["EDS"].responses_sent >= 2, "the endpoint change did not reach the NACKing proxy"
    finally:
        blocker.close()
