"""Discovery in event mode with real parts: local ECS (real processes, events through its SQS
queue) -> control plane -> real Envoy -> continuous gRPC calls. What users see: no failed calls
through deployments, scale-in and an ECS API outage; endpoints intact while ECS is down."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack, task_address
from controlplane.demo.traffic import SteadyTraffic

pytestmark = pytest.mark.integration

SERVICE = "routeguide"
# Every call the control plane makes to read ECS: the outage takes all of them down.
DISCOVERY_OPERATIONS = ("ListTasks", "DescribeTasks", "DescribeTaskDefinition", "DescribeContainerInstances")


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    # A slow poll interval: it only paces retries while something fails. Changes must arrive
    # through events; a full resync runs every 20 s.
    # Own address octets: other local ECSs on this machine use the default ones.
    octet = random.randint(100, 199)
    with DemoStack(
        cluster="events",
        poll_interval=1.0,
        deactivating_seconds=2.0,
        events_queue="ecs-events",
        resync_interval=20,
        local_ecs_args=["--task-address-octet", str(octet), "--instance-address-octet", str(octet + 50)],
    ) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 2)
        stack.wait_for_running(SERVICE, 2)
        # Few attempts per call: the outage test waits for a failed sync, not for botocore's backoff.
        stack.start_control_plane("--aws-max-attempts", "2")
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-events")
    envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
    return envoy


def _wait_for_service(stack: DemoStack, envoy: EnvoyProcess, count: int, task_definition: str | None = None) -> set[str]:
    deadline = time.monotonic() + 40
    while True:
        running = stack.running_tasks(SERVICE)
        settled = len(running) == count and not [t for t in stack.tasks(SERVICE, "STOPPED") if t["lastStatus"] != "STOPPED"]
        if task_definition is not None:
            settled = settled and all(t["taskDefinitionArn"] == task_definition for t in running)
        if settled:
            break
        assert time.monotonic() < deadline, f"service never settled at {count} tasks"
        time.sleep(0.2)
    addresses = stack.addresses(running)
    envoy.wait_for_hosts(SERVICE, addresses, timeout=10)
    return addresses


def test_rolling_deployment_and_scale_in_under_load_lose_no_call(stack: DemoStack, envoy: EnvoyProcess) -> None:
    before = stack.addresses(stack.running_tasks(SERVICE))
    new_revision = stack.register(environment={"DEPLOYMENT": "2"})
    traffic = SteadyTraffic(envoy.target, max_seconds=70).start()
    try:
        time.sleep(0.3)
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=new_revision)
        after_deploy = _wait_for_service(stack, envoy, 2, new_revision)
        assert not after_deploy & before
        for address in after_deploy:
            assert traffic.wait_for_address(address, timeout=5) is not None, f"{address} never answered"

        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=1)
        after_scale_in = _wait_for_service(stack, envoy, 1)
        time.sleep(0.5)
    finally:
        report = traffic.stop()
    assert report.failed == 0, report.failures[:5]
    assert report.calls > 200
    assert after_scale_in < after_deploy
    # The changes came through events, not a poll.
    kinds = {e.get("kind") for e in stack.control_plane_log() if e.get("event") == "discovery.synced" and e.get("changed")}
    assert "events" in kinds, kinds
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=2)
    _wait_for_service(stack, envoy, 2)


def test_ecs_and_queue_outage_keeps_endpoints_and_traffic_then_catches_up(stack: DemoStack, envoy: EnvoyProcess) -> None:
    serving = _wait_for_service(stack, envoy, 2)
    traffic = SteadyTraffic(envoy.target, max_seconds=60).start()
    try:
        for operation in DISCOVERY_OPERATIONS:
            stack.inject_faults(operation=operation, error="ThrottlingException")
        stack.inject_faults(service="sqs", operation="ReceiveMessage", error="ServiceUnavailable")
        failures_before = sum(1 for e in stack.control_plane_log() if e.get("event") == "discovery.sync_failed")
        # Scale out while discovery is blind: the new task cannot be seen until ECS answers again.
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
        # Hold the outage until discovery has failed (botocore retries throttles with backoff
        # first) and for at least 3 s; endpoints must stay exactly as they were throughout.
        started, deadline = time.monotonic(), time.monotonic() + 30.0
        failed_syncs: list[dict] = []
        while time.monotonic() < deadline and (not failed_syncs or time.monotonic() - started < 3.0):
            assert envoy.healthy_hosts(SERVICE) == serving, "an endpoint changed while ECS was failing"
            failed_syncs = [e for e in stack.control_plane_log() if e.get("event") == "discovery.sync_failed"][failures_before:]
            time.sleep(0.2)
        assert failed_syncs and "ThrottlingException" in failed_syncs[-1]["error"]
        assert failed_syncs[-1]["kept_last_view"] is True
        stack.clear_faults()
        running = stack.wait_for_running(SERVICE, 3)
        envoy.wait_for_hosts(SERVICE, stack.addresses(running), timeout=10)
        new_address = next(iter(stack.addresses(running) - serving))
        assert traffic.wait_for_address(new_address, timeout=5) is not None
    finally:
        stack.clear_faults()
        report = traffic.stop()
    assert report.failed == 0, report.failures[:5]
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=2)
    _wait_for_service(stack, envoy, 2)


def test_a_task_is_routed_within_a_second_of_running_through_events(stack: DemoStack, envoy: EnvoyProcess) -> None:
    serving = _wait_for_service(stack, envoy, 2)
    traffic = SteadyTraffic(envoy.target, max_seconds=30, interval=0.005).start()
    try:
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
        running = stack.wait_for_running(SERVICE, 3)
        new_task = next(t for t in running if task_address(t) not in serving)
        first_call = traffic.wait_for_address(task_address(new_task) or "", timeout=10)
    finally:
        report = traffic.stop()
    assert first_call is not None
    # Generous against a loaded CI machine; bench/convergence.py measures the real distribution.
    assert first_call - new_task["startedAt"].timestamp() < 2.0
    assert report.failed == 0, report.failures[:5]
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=2)
    _wait_for_service(stack, envoy, 2)
