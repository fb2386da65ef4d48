"""AWS's stop semantics: DEACTIVATING and a deregistration delay only behind a load balancer,
otherwise SIGTERM right after desiredStatus=STOPPED; stopTimeout then SIGKILL; DEPROVISIONING
(awsvpc) after the containers stopped; each container's own lastStatus."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from controlplane.localecs import LocalEcs

from .conftest import LocalEcsFactory
from .events_queue import EventReader, states, stopped
from .helpers import container, wait_for

TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/web/0123456789abcdef"
ADDRESS_ONLY = {"local-ecs.address-only": "true"}


def _address_only_definition(ecs: Any, family: str, network_mode: str = "awsvpc") -> None:
    mapping: dict[str, Any] = {"containerPort": 8080}
    if network_mode == "bridge":
        mapping["hostPort"] = 0
    ecs.register_task_definition(
        family=family, networkMode=network_mode,
        containerDefinitions=[{"name": "app", "image": "x", "portMappings": [mapping], "dockerLabels": ADDRESS_ONLY}],
    )


def _service(ecs: Any, name: str, family: str, *, load_balanced: bool) -> str:
    extra: dict[str, Any] = {}
    if load_balanced:
        extra["loadBalancers"] = [{"targetGroupArn": TARGET_GROUP, "containerName": "app", "containerPort": 8080}]
    ecs.create_service(cluster="c", serviceName=name, taskDefinition=family, desiredCount=1, **extra)
    arns: list[str] = wait_for(lambda: ecs.list_tasks(cluster="c", serviceName=name)["taskArns"], what="a task")
    return arns[0]


def _iso(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize(
    ("network_mode", "load_balanced", "expected"),
    [
        ("awsvpc", False, ["RUNNING", "STOPPING", "DEPROVISIONING", "STOPPED"]),
        ("awsvpc", True, ["RUNNING", "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"]),
        ("bridge", False, ["RUNNING", "STOPPING", "STOPPED"]),
        ("bridge", True, ["RUNNING", "DEACTIVATING", "STOPPING", "STOPPED"]),
    ],
)
def test_stop_events_follow_the_aws_lifecycle(
    local_ecs: LocalEcsFactory, network_mode: str, load_balanced: bool, expected: list[str]
) -> None:
    srv = local_ecs.server(processes=False, deactivating_seconds=0.3, event_queues=["events"])
    ecs, reader = local_ecs.client(srv), EventReader(local_ecs.client(srv, "sqs"), "events")
    ecs.create_cluster(clusterName="c")
    _address_only_definition(ecs, "f", network_mode)
    arn = _service(ecs, "s", "f", load_balanced=load_balanced)
    reader.until(lambda events: any(e["detail"]["lastStatus"] == "RUNNING" for e in events))
    ecs.stop_task(cluster="c", task=arn, reason="test")
    reader.until(stopped(arn))
    events = reader.for_task(arn)

    seen = states(events)
    assert seen[:3] == [("PROVISIONING", "RUNNING"), ("PENDING", "RUNNING"), ("RUNNING", "RUNNING")]
    stopping = seen[3:]
    # desiredStatus STOPPED comes first, while the task is still RUNNING; then lastStatus moves on.
    assert stopping == [(status, "STOPPED") for status in expected]
    # Each event carries a new detail version (duplicates would share one).
    versions = [e["detail"]["version"] for e in events]
    assert versions == sorted(set(versions))
    last = events[-1]["detail"]
    assert last["stopCode"] == "UserInitiated" and last["stoppedReason"] == "test"
    if load_balanced:
        deactivating = next(e for e in events if e["detail"]["lastStatus"] == "DEACTIVATING")
        stopping_event = next(e for e in events if e["detail"]["lastStatus"] == "STOPPING")
        # The deregistration delay passes between DEACTIVATING and STOPPING.
        assert _iso(stopping_event["detail"]["updatedAt"]) - _iso(deactivating["detail"]["updatedAt"]) >= 0.29


def test_without_load_balancer_sigterm_follows_the_stop_request(local_ecs: LocalEcsFactory, tmp_path: Path) -> None:
    # A deregistration delay of 60 s would hold the task for a minute if it applied.
    srv = local_ecs.server(deactivating_seconds=60)
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    term_file = tmp_path / "term"
    ecs.register_task_definition(
        family="f", networkMode="awsvpc",
        containerDefinitions=[container(env={"TERM_FILE": str(term_file)}, stopTimeout=5)],
    )
    arn = _service(ecs, "s", "f", load_balanced=False)
    wait_for(lambda: ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING", what="RUNNING")
    ecs.update_service(cluster="c", service="s", desiredCount=0)
    final = wait_for(
        lambda: (t := ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])["lastStatus"] == "STOPPED" and t,
        timeout=20, what="STOPPED well before the 60 s drain",
    )
    sigterm_at = float(term_file.read_text().split()[0])
    assert final["stoppingAt"].timestamp() <= sigterm_at + 0.001
    assert sigterm_at <= final["executionStoppedAt"].timestamp() + 0.001
    assert final["stopCode"] == "ServiceSchedulerInitiated"
    assert final["containers"][0]["exitCode"] == 0


def test_load_balanced_task_drains_for_the_deregistration_delay_before_sigterm(local_ecs: LocalEcsFactory, tmp_path: Path) -> None:
    srv = local_ecs.server(deactivating_seconds=1.0)
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    term_file = tmp_path / "term"
    ecs.register_task_definition(
        family="f", networkMode="awsvpc", containerDefinitions=[container(env={"TERM_FILE": str(term_file)})],
    )
    arn = _service(ecs, "s", "f", load_balanced=True)
    wait_for(lambda: ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING", what="RUNNING")
    ecs.stop_task(cluster="c", task=arn)
    wait_for(lambda: ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["lastStatus"] == "DEACTIVATING", what="DEACTIVATING")
    assert not term_file.exists()
    final = wait_for(
        lambda: (t := ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])["lastStatus"] == "STOPPED" and t, what="STOPPED"
    )
    sigterm_at = float(term_file.read_text().split()[0])
    assert sigterm_at - final["stoppingAt"].timestamp() >= 0.99


def test_sigterm_ignored_means_sigkill_after_the_container_stop_timeout(local_ecs: LocalEcsFactory, tmp_path: Path) -> None:
    srv = local_ecs.server()
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    stubborn, polite = tmp_path / "stubborn", tmp_path / "polite"
    ecs.register_task_definition(
        family="f",
        containerDefinitions=[
            container(name="stubborn", env={"TERM_DELAY": "ignore", "TERM_FILE": str(stubborn)}, stopTimeout=1),
            container(name="polite", port=9090, env={"TERM_FILE": str(polite)}, stopTimeout=1),
        ],
    )
    arn = ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"]
    wait_for(lambda: ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING", what="RUNNING")
    ecs.stop_task(cluster="c", task=arn)
    final = wait_for(
        lambda: (t := ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])["lastStatus"] == "STOPPED" and t, what="STOPPED"
    )
    codes = {c["name"]: c["exitCode"] for c in final["containers"]}
    assert codes == {"stubborn": 137, "polite": 0}  # 128 + SIGKILL, as Docker reports
    # Both got SIGTERM at once; the stubborn one was killed only after its stopTimeout.
    sigterm_at = float(stubborn.read_text().split()[0])
    assert abs(float(polite.read_text().split()[0]) - sigterm_at) < 1.0
    assert final["executionStoppedAt"].timestamp() - sigterm_at >= 0.99
    assert {c["lastStatus"] for c in final["containers"]} == {"STOPPED"}


def test_default_stop_timeout_is_aws_thirty_seconds() -> None:
    with LocalEcs(processes=False) as ecs:
        assert ecs.timing.default_stop_timeout_seconds == 30.0
        assert ecs.timing.drain_every_task is False


def test_drain_every_task_is_an_explicit_kinder_mode(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server(processes=False, deactivating_seconds=0.2, drain_every_task=True, event_queues=["events"])
    ecs, reader = local_ecs.client(srv), EventReader(local_ecs.client(srv, "sqs"), "events")
    ecs.create_cluster(clusterName="c")
    _address_only_definition(ecs, "f")
    arn = ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"]
    reader.until(lambda events: any(e["detail"]["lastStatus"] == "RUNNING" for e in events))
    ecs.stop_task(cluster="c", task=arn)
    reader.until(stopped(arn))
    assert ("DEACTIVATING", "STOPPED") in states(reader.for_task(arn))


def test_load_balancers_are_checked_and_echoed(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server(processes=False)
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    _address_only_definition(ecs, "f")
    for wrong, message in [
        ({"containerName": "nope", "containerPort": 8080}, "does not exist"),
        ({"containerName": "app", "containerPort": 9999}, "container port 9999"),
    ]:
        with pytest.raises(botocore.exceptions.ClientError, match=message) as error:
            ecs.create_service(cluster="c", serviceName="bad", taskDefinition="f", loadBalancers=[{"targetGroupArn": TARGET_GROUP, **wrong}])
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    balancer = {"targetGroupArn": TARGET_GROUP, "containerName": "app", "containerPort": 8080}
    created = ecs.create_service(cluster="c", serviceName="web", taskDefinition="f", loadBalancers=[balancer])["service"]
    assert created["loadBalancers"] == [balancer]
    assert ecs.describe_services(cluster="c", services=["web"])["services"][0]["loadBalancers"] == [balancer]


def test_non_essential_container_stops_alone_essential_one_stops_the_task(local_ecs: LocalEcsFactory, tmp_path: Path) -> None:
    srv = local_ecs.server(event_queues=["events"])
    ecs, reader = local_ecs.client(srv), EventReader(local_ecs.client(srv, "sqs"), "events")
    ecs.create_cluster(clusterName="c")
    app_term = tmp_path / "app-term"
    ecs.register_task_definition(
        family="f", networkMode="awsvpc",
        containerDefinitions=[
            container(name="app", env={"TERM_FILE": str(app_term)}),
            container(name="sidecar", port=9090, essential=False, env={"EXIT_AFTER": "0.5", "EXIT_CODE": "4"}),
            container(name="agent", port=9191, env={"EXIT_AFTER": "3", "EXIT_CODE": "5"}),
        ],
    )
    arn = ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"]

    def containers() -> dict[str, str]:
        task = ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
        return {c["name"]: c["lastStatus"] for c in task["containers"]} | {"task": task["lastStatus"]}

    wait_for(lambda: containers()["sidecar"] == "STOPPED", what="the sidecar stopped")
    # The task and its other containers run on; the sidecar's own state shows it stopped.
    assert containers() == {"app": "RUNNING", "sidecar": "STOPPED", "agent": "RUNNING", "task": "RUNNING"}
    sidecar = next(c for c in ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]["containers"] if c["name"] == "sidecar")
    assert sidecar["exitCode"] == 4
    # A container state change is a task state change event.
    reader.until(
        lambda events: any(
            e["detail"]["lastStatus"] == "RUNNING" and {c["name"]: c["lastStatus"] for c in e["detail"]["containers"]}["sidecar"] == "STOPPED"
            for e in events
        )
    )
    # The essential agent exiting stops the task: the app gets SIGTERM.
    final = wait_for(
        lambda: (t := ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])["lastStatus"] == "STOPPED" and t, what="STOPPED"
    )
    assert final["stopCode"] == "EssentialContainerExited" and "agent" in final["stoppedReason"]
    assert {c["name"]: c.get("exitCode") for c in final["containers"]} == {"app": 0, "sidecar": 4, "agent": 5}
    assert app_term.exists()
