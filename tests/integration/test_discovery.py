"""Discovery with real parts: local ECS at AWS's semantics (real processes, events through its
SQS queue, no healthStatus in events, SIGTERM right after desiredStatus=STOPPED for a service
without a load balancer) -> control plane at its defaults -> real Envoy -> continuous gRPC calls.

What users see: no failed calls through rolling deployments in event and polling mode; health
only from DescribeTasks (an event never makes an unhealthy task healthy, a task with a health
check gets calls only once HEALTHY); a stopped sidecar container is no longer served; endpoints
intact while ECS is down."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import ROUTEGUIDE_PORT, DemoStack, routeguide_task_definition, task_address
from controlplane.demo.traffic import SteadyTraffic

pytestmark = pytest.mark.integration

SERVICE = "routeguide"
TASKS = 3
# Every call the control plane makes to read ECS: the outage takes all of them down.
DISCOVERY_OPERATIONS = ("ListTasks", "DescribeTasks", "DescribeTaskDefinition", "DescribeContainerInstances")
# ECS stops an old task once a new one counts as healthy: 40 s after RUNNING in AWS; shorter
# here, but longer than the default 5 s poll so that polling mode is tested as it runs in AWS.
HEALTHY_AFTER_RUNNING = "8"
# What an app that must lose no call does without a load balancer: it keeps serving a moment
# after SIGTERM, while proxies learn that it is stopping (gRPC C-core's stop() resets calls
# arriving as it stops). 2 s: more than a poll during a deployment (1 s) plus a read.
APP = {"ROUTEGUIDE_SHUTDOWN_DELAY_S": "2"}


def _register(stack: DemoStack, **kwargs: Any) -> str:
    definition = routeguide_task_definition(**kwargs)
    definition["containerDefinitions"][0]["stopTimeout"] = 10
    return str(stack.ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"])


def _stack(cluster: str, *, events: bool, control_plane_args: tuple[str, ...] = ()) -> Iterator[DemoStack]:
    # Own address octets: other local ECSs on this machine use other ones.
    octet = random.randint(100, 199)
    with DemoStack(
        cluster=cluster,
        events_queue="ecs-events" if events else None,
        local_ecs_args=[
            "--task-address-octet", str(octet), "--instance-address-octet", str(octet + 50),
            "--healthy-after-running-seconds", HEALTHY_AFTER_RUNNING,
        ],
    ) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, _register(stack, environment=APP), TASKS)
        stack.wait_for_running(SERVICE, TASKS)
        stack.start_control_plane(*control_plane_args)
        yield stack


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    """Event mode, every other setting at its default but for few attempts per AWS call: the
    outage test waits for a failed sync, not for botocore's backoff."""
    yield from _stack("events", events=True, control_plane_args=("--aws-max-attempts", "2"))


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-events")
    envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
    return envoy


def _settled(stack: DemoStack, count: int, task_definition: str | None = None, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        running = stack.running_tasks(SERVICE)
        settled = len(running) == count and not [t for t in stack.tasks(SERVICE, "STOPPED") if t["lastStatus"] != "STOPPED"]
        if task_definition is not None:
            settled = settled and all(t["taskDefinitionArn"] == task_definition for t in running)
        if settled:
            return running
        assert time.monotonic() < deadline, f"service never settled at {count} tasks"
        time.sleep(0.2)


def _wait_for_service(stack: DemoStack, envoy: EnvoyProcess, count: int, task_definition: str | None = None) -> set[str]:
    addresses = stack.addresses(_settled(stack, count, task_definition))
    envoy.wait_for_hosts(SERVICE, addresses, timeout=10)
    return addresses


def _rolling_deploy_under_load(stack: DemoStack, envoy: EnvoyProcess) -> None:
    before = _wait_for_service(stack, envoy, TASKS)
    new_revision = _register(stack, environment={**APP, "DEPLOYMENT": str(random.random())})
    traffic = SteadyTraffic(envoy.target, max_seconds=90).start()
    try:
        time.sleep(0.3)
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=new_revision)
        after = stack.addresses(_settled(stack, TASKS, new_revision, timeout=80))
        for address in after:
            assert traffic.wait_for_address(address, timeout=10) is not None, f"{address} never answered"
        time.sleep(1.0)
    finally:
        report = traffic.stop()
    assert not after & before
    assert report.failed == 0, report.failures[:5]
    assert report.calls > 500
    envoy.wait_for_hosts(SERVICE, after, timeout=10)


# -- rolling deployments ---------------------------------------------------------------------------


def test_a_rolling_deploy_of_3_tasks_under_load_fails_no_call_in_event_mode(stack: DemoStack, envoy: EnvoyProcess) -> None:
    _rolling_deploy_under_load(stack, envoy)
    # The changes came through events, not a poll.
    kinds = {e.get("kind") for e in stack.control_plane_log() if e.get("event") == "discovery.synced" and e.get("changed")}
    assert "events" in kinds, kinds


def test_a_rolling_deploy_of_3_tasks_under_load_fails_no_call_in_polling_mode() -> None:
    # Debug logs: every read is logged, also those that changed nothing.
    for polling in _stack("polling", events=False, control_plane_args=("--log-level", "debug")):
        envoy = polling.start_envoy("edge-polling")
        envoy.wait_for_hosts(SERVICE, polling.addresses(polling.running_tasks(SERVICE)), timeout=20)
        _rolling_deploy_under_load(polling, envoy)
        # It was seen as a deployment: reads every second while it lasted, every 5 s otherwise.
        reads = sorted(
            e["timestamp"] for e in polling.control_plane_log() if e.get("event") == "discovery.synced" and e.get("kind") == "resync"
        )
        gaps = [(_seconds(b) - _seconds(a)) for a, b in zip(reads, reads[1:])]
        assert min(gaps) < 1.5 and max(gaps) > 4.0, gaps


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- health -----------------------------------------------------------------------------------------


def _checked_task_definition(stack: DemoStack, gate: Path, *, start_period: int = 0) -> str:
    """route-guide `checked` with a health check that passes once `gate` exists, and a
    non-essential sidecar (another route guide) serving `checked-side`."""
    definition = routeguide_task_definition(
        "checked", service="checked", labels={"xds.route.hosts": "checked.local"}, environment=APP
    )
    app = definition["containerDefinitions"][0]
    app["healthCheck"] = {"command": ["CMD-SHELL", f"test -e {gate}"], "interval": 1, "timeout": 2, "retries": 2, "startPeriod": start_period}
    side = routeguide_task_definition(
        "checked", service="checked-side", labels={"xds.route.hosts": "side.local", "xds.port": "50052"}
    )["containerDefinitions"][0]
    side.update(name="side", essential=False, portMappings=[{"containerPort": 50052, "protocol": "tcp"}])
    side["command"] = [sys.executable, "-m", "controlplane.routeguide", "--port", "50052"]
    definition["containerDefinitions"].append(side)
    return str(stack.ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"])


def test_an_event_without_health_does_not_make_an_unhealthy_task_healthy_and_a_stopped_sidecar_stops_being_served(
    stack: DemoStack, envoy: EnvoyProcess, tmp_path: Path
) -> None:
    task = stack.ecs.run_task(
        cluster=stack.cluster, taskDefinition=_checked_task_definition(stack, tmp_path / "never"), launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-local"]}},
    )["tasks"][0]
    try:
        deadline = time.monotonic() + 30
        while True:
            described = stack.ecs.describe_tasks(cluster=stack.cluster, tasks=[task["taskArn"]])["tasks"][0]
            if described["lastStatus"] == "RUNNING" and described.get("healthStatus") == "UNHEALTHY":
                break
            assert time.monotonic() < deadline, described.get("healthStatus")
            time.sleep(0.2)
        address = task_address(described) or ""
        side_address = address.replace(f":{ROUTEGUIDE_PORT}", ":50052")
        # Health comes from DescribeTasks (a refresh while it is not HEALTHY): Envoy knows it, unhealthy.
        envoy.process.wait_until(lambda: "failed_eds_health" in envoy.hosts("checked").get(address, ""), 15, "checked unhealthy")
        envoy.wait_for_hosts("checked-side", {side_address}, timeout=10)

        # The sidecar dies (non-essential: the task keeps running). ECS sends a task state change
        # event, without any healthStatus.
        side = next(c for c in described["containers"] if c["name"] == "side")
        os.kill(int(side["runtimeId"].rsplit("-", 1)[-1]), signal.SIGKILL)

        deadline = time.monotonic() + 10
        while envoy.hosts("checked-side"):
            assert envoy.hosts("checked").get(address) != "healthy", "an event without health made the task healthy"
            assert time.monotonic() < deadline, "the stopped sidecar container is still served"
            time.sleep(0.05)
        for _ in range(30):  # and it stays so
            assert envoy.hosts("checked").get(address) != "healthy", "an event without health made the task healthy"
            time.sleep(0.1)
        stopped = [e for e in stack.control_plane_log() if e.get("event") == "discovery.synced" and e.get("kind") == "events"]
        assert stopped, "the sidecar's stop did not arrive as an event"
    finally:
        stack.ecs.stop_task(cluster=stack.cluster, task=task["taskArn"], reason="test done")


def test_a_task_with_a_health_check_gets_no_calls_until_healthy(stack: DemoStack, envoy: EnvoyProcess, tmp_path: Path) -> None:
    """A new revision with a health check: its task RUNNING but UNKNOWN gets no call; HEALTHY, it
    does (and only then does ECS replace the old tasks)."""
    serving = _wait_for_service(stack, envoy, TASKS)
    gate = tmp_path / "healthy"
    definition = routeguide_task_definition(environment={**APP, "DEPLOYMENT": "checked"})
    definition["containerDefinitions"][0]["healthCheck"] = {
        "command": ["CMD-SHELL", f"test -e {gate}"], "interval": 1, "timeout": 2, "retries": 2, "startPeriod": 120,
    }
    definition["containerDefinitions"][0]["stopTimeout"] = 10
    revision = str(stack.ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"])
    traffic = SteadyTraffic(envoy.target, max_seconds=120).start()
    try:
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=revision)
        deadline = time.monotonic() + 30
        while not (new := [t for t in stack.running_tasks(SERVICE) if t["taskDefinitionArn"] == revision]):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        new_addresses = stack.addresses(new)
        envoy.process.wait_until(lambda: new_addresses <= set(envoy.hosts(SERVICE)), 15, "new hosts known to Envoy")
        time.sleep(4.0)  # two health refreshes: still UNKNOWN
        assert not set(traffic.report().by_address) & new_addresses, "a task got calls before its health check passed"
        assert not new_addresses & envoy.healthy_hosts(SERVICE)

        gate.touch()
        for address in new_addresses:
            assert traffic.wait_for_address(address, timeout=15) is not None, f"{address} never got a call once HEALTHY"
        after = stack.addresses(_settled(stack, TASKS, revision, timeout=60))
        time.sleep(1.0)
    finally:
        report = traffic.stop()
    assert not after & serving
    assert report.failed == 0, report.failures[:5]


# -- outages, convergence -----------------------------------------------------------------------


def test_ecs_and_queue_outage_keeps_endpoints_and_traffic_then_catches_up(stack: DemoStack, envoy: EnvoyProcess) -> None:
    serving = _wait_for_service(stack, envoy, TASKS)
    traffic = SteadyTraffic(envoy.target, max_seconds=60).start()
    try:
        for operation in DISCOVERY_OPERATIONS:
            stack.inject_faults(operation=operation, error="ThrottlingException")
        stack.inject_faults(service="sqs", operation="ReceiveMessage", error="ServiceUnavailable")
        failures_before = sum(1 for e in stack.control_plane_log() if e.get("event") == "discovery.sync_failed")
        # Scale out while discovery is blind: the new task cannot be seen until ECS answers again.
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=TASKS + 1)
        # Hold the outage until discovery has failed (botocore retries throttles with backoff
        # first) and for at least 3 s; endpoints must stay exactly as they were throughout.
        started, deadline = time.monotonic(), time.monotonic() + 30.0
        failed_syncs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and (not failed_syncs or time.monotonic() - started < 3.0):
            assert envoy.healthy_hosts(SERVICE) == serving, "an endpoint changed while ECS was failing"
            failed_syncs = [e for e in stack.control_plane_log() if e.get("event") == "discovery.sync_failed"][failures_before:]
            time.sleep(0.2)
        assert failed_syncs and "ThrottlingException" in failed_syncs[-1]["error"]
        assert failed_syncs[-1]["kept_last_view"] is True
        stack.clear_faults()
        running = stack.wait_for_running(SERVICE, TASKS + 1)
        envoy.wait_for_hosts(SERVICE, stack.addresses(running), timeout=15)
        new_address = next(iter(stack.addresses(running) - serving))
        assert traffic.wait_for_address(new_address, timeout=5) is not None
    finally:
        stack.clear_faults()
        report = traffic.stop()
    assert report.failed == 0, report.failures[:5]
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=TASKS)
    _wait_for_service(stack, envoy, TASKS)


def test_a_task_is_routed_within_a_second_of_running_through_events(stack: DemoStack, envoy: EnvoyProcess) -> None:
    serving = _wait_for_service(stack, envoy, TASKS)
    traffic = SteadyTraffic(envoy.target, max_seconds=30, interval=0.005).start()
    try:
        stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=TASKS + 1)
        running = stack.wait_for_running(SERVICE, TASKS + 1)
        new_task = next(t for t in running if task_address(t) not in serving)
        first_call = traffic.wait_for_address(task_address(new_task) or "", timeout=10)
    finally:
        report = traffic.stop()
    assert first_call is not None
    # Below the 5 s default poll interval, so only the event path can pass it; generous against a loaded
    # machine (2.2 s seen at load 10). bench/convergence.py measures the real distribution.
    assert first_call - new_task["startedAt"].timestamp() < 4.0
    assert report.failed == 0, report.failures[:5]
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=TASKS)
    _wait_for_service(stack, envoy, TASKS)
