"""Event mode: what SQS bodies mean, how event details merge into the task table (health never
from events), what the reads they trigger cost, and what a resync repairs."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.sqs_events import OtherEvent, TaskChange, Unreadable, parse_message
from controlplane.discovery.state import ContainerEndpoint

from .ecs_stubs import CLUSTER, Aws, awsvpc_task, event_body, event_detail, task_arn, td_arn

TD = td_arn("orders", 3)


@pytest.fixture
def aws() -> Iterator[Aws]:
    aws = Aws()
    with aws.ecs_stub, aws.ec2_stub:
        yield aws
        aws.ecs_stub.assert_no_pending_responses()
        aws.ec2_stub.assert_no_pending_responses()


def _read(aws: Aws, reader: ClusterReader, *tasks: dict[str, Any], first: bool = False, **td: Any) -> None:
    """Stub and run one full read showing `tasks`."""
    arns = [t["taskArn"] for t in tasks]
    aws.list_tasks([[t["taskArn"] for t in tasks if t["desiredStatus"] == "RUNNING"]])
    asked = [a for a in arns if a in {t["taskArn"] for t in tasks if t["desiredStatus"] == "RUNNING"}]
    asked += sorted(a for a in arns if a not in asked)
    aws.describe_tasks(asked, list(tasks))
    if first:
        aws.describe_task_definition("orders", 3, "awsvpc", **td)
    reader.read(CLUSTER)


# -- what a body is -----------------------------------------------------------------------------


def test_bodies_are_task_changes_other_ecs_events_or_unreadable() -> None:
    change = parse_message(event_body(event_detail(awsvpc_task(1, TD), version=4)))
    assert isinstance(change, TaskChange)
    assert (change.cluster, change.task_arn, change.version) == (CLUSTER, task_arn(1), 4)
    sns = json.dumps({"Type": "Notification", "Message": event_body(event_detail(awsvpc_task(2, TD)))})
    assert isinstance(parse_message(sns), TaskChange)

    assert parse_message(event_body({"eventName": "SERVICE_STEADY_STATE"}, "ECS Service Action")) == OtherEvent("ECS Service Action")
    assert parse_message(event_body({}, "ECS Container Instance State Change")) == OtherEvent("ECS Container Instance State Change")
    # A detail type we do not know is counted as "other": metric labels stay bounded.
    assert parse_message(event_body({}, "Something New")) == OtherEvent("other")

    assert parse_message("not json") == Unreadable("not JSON")
    assert isinstance(parse_message(json.dumps({"source": "aws.s3"})), Unreadable)
    malformed = event_detail(awsvpc_task(1, TD))
    malformed["containers"] = "app"
    assert parse_message(event_body(malformed)) == Unreadable("detail.containers is not a list of objects")
    malformed = event_detail(awsvpc_task(1, TD), version=4)
    malformed["version"] = "4"
    assert parse_message(event_body(malformed)) == Unreadable("detail.version is not an integer")


def test_the_documented_event_example_carries_no_health() -> None:
    change = parse_message(event_body(event_detail(awsvpc_task(1, TD, health="HEALTHY"), version=4)))
    assert isinstance(change, TaskChange)
    assert "healthStatus" not in change.detail
    assert all("healthStatus" not in c for c in change.detail["containers"])
    assert change.detail["startedAt"] == "2025-01-02T03:04:05.000Z"


# -- merging details ----------------------------------------------------------------------------


def test_complete_details_are_applied_without_calls_and_older_or_duplicate_ones_ignored(aws: Aws) -> None:
    aws.describe_task_definition("orders", 3, "awsvpc")
    reader = ClusterReader(aws.ecs, aws.ec2)

    state, calls, applied = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD), version=3)])
    assert calls == {"DescribeTaskDefinition": 1} and applied == 1
    assert state.tasks[0].endpoints == (ContainerEndpoint("app", 50051, "127.0.0.2", 50051),)

    # A late (older) event and a duplicate change nothing and cost nothing.
    older, same = event_detail(awsvpc_task(1, TD), version=2), event_detail(awsvpc_task(1, TD), version=3)
    state, calls, applied = reader.apply(CLUSTER, [older, same])
    assert calls == {} and applied == 0 and state.tasks[0].desired_status == "RUNNING"

    # Newer: draining at once.
    state, _, applied = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="STOPPED"), version=4)])
    assert applied == 1 and state.tasks[0].desired_status == "STOPPED"

    # Stopped, then a reordered RUNNING event from before: the task never comes back.
    state, _, _ = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, last="STOPPED", desired="STOPPED"), version=7)])
    assert state.tasks == ()
    state, _, applied = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD), version=5)])
    assert state.tasks == () and applied == 0


def test_a_detail_without_an_address_is_described(aws: Aws) -> None:
    incomplete = event_detail(awsvpc_task(1, TD), version=3)
    incomplete["attachments"] = []
    incomplete["containers"] = [{"name": "app", "lastStatus": "RUNNING"}]
    aws.describe_task_definition("orders", 3, "awsvpc")
    aws.describe_tasks([task_arn(1)], [awsvpc_task(1, TD, version=3)])

    state, calls, applied = ClusterReader(aws.ecs, aws.ec2).apply(CLUSTER, [incomplete])

    assert calls == {"DescribeTaskDefinition": 1, "DescribeTasks": 1} and applied == 1
    assert state.tasks[0].endpoints[0].address == "127.0.0.2"


def test_an_event_never_changes_the_health_we_know(aws: Aws) -> None:
    """A task without a health check: the event is applied as is, and health stays as described."""
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, health="UNHEALTHY", version=3), first=True)

    state, calls, applied = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD), version=4)])

    assert applied == 1 and calls == {}
    assert state.tasks[0].container_health == {"app": "UNHEALTHY"}
    assert state.tasks[0].health_status == "UNHEALTHY"


def test_health_checked_tasks_named_by_events_are_described_100_per_call(aws: Aws) -> None:
    reader = ClusterReader(aws.ecs, aws.ec2)
    aws.describe_task_definition("orders", 3, "awsvpc", health_check=True)
    arns = sorted(task_arn(i) for i in range(150))
    by_arn = {task_arn(i): awsvpc_task(i, TD, health="HEALTHY", version=4) for i in range(150)}
    aws.describe_tasks(arns[:100], [by_arn[a] for a in arns[:100]])
    aws.describe_tasks(arns[100:], [by_arn[a] for a in arns[100:]])

    state, calls, _ = reader.apply(CLUSTER, [event_detail(awsvpc_task(i, TD), version=4) for i in range(150)])

    assert calls == {"DescribeTaskDefinition": 1, "DescribeTasks": 2}
    assert {t.container_health["app"] for t in state.tasks} == {"HEALTHY"}


def test_an_unhealthy_task_stays_unhealthy_through_an_event(aws: Aws) -> None:
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, health="UNHEALTHY", version=3), first=True, health_check=True)
    # The event names it: it is described, and ECS still says UNHEALTHY.
    aws.describe_tasks([task_arn(1)], [awsvpc_task(1, TD, health="UNHEALTHY", version=4)])

    state, calls, _ = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD), version=4)])

    assert calls == {"DescribeTasks": 1}
    assert state.tasks[0].container_health == {"app": "UNHEALTHY"}


def test_health_from_a_describe_older_than_the_event_still_counts(aws: Aws) -> None:
    """Health has no version: an eventually consistent describe shows an older status but a
    current health result."""
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, health="UNKNOWN", version=3), first=True, health_check=True)
    aws.describe_tasks([task_arn(1)], [awsvpc_task(1, TD, health="HEALTHY", version=3)])

    state, _, _ = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="RUNNING"), version=5)])

    assert state.tasks[0].container_health == {"app": "HEALTHY"}
    assert reader.table(CLUSTER).get(task_arn(1)).version == 5  # type: ignore[union-attr]


def test_any_event_burst_describes_the_tasks_still_waiting_for_healthy(aws: Aws) -> None:
    """ECS stops an old task once its replacement is HEALTHY, without an event for the health
    change: the stop event is the cue to look at the replacement again."""
    reader = ClusterReader(aws.ecs, aws.ec2)
    old = awsvpc_task(1, TD, health="HEALTHY", version=3, started_by="ecs-svc/1")
    new = awsvpc_task(2, TD, health="UNKNOWN", version=3, started_by="ecs-svc/2")
    _read(aws, reader, old, new, first=True, health_check=True)
    aws.describe_tasks([task_arn(2)], [awsvpc_task(2, TD, health="HEALTHY", version=3, started_by="ecs-svc/2")])

    state, calls, _ = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="STOPPED", started_by="ecs-svc/1"), version=4)])

    assert calls == {"DescribeTasks": 1}
    assert [(t.desired_status, t.container_health["app"]) for t in state.tasks] == [("STOPPED", "HEALTHY"), ("RUNNING", "HEALTHY")]


def test_a_health_refresh_describes_tasks_awaiting_health_or_every_checked_one(aws: Aws) -> None:
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, health="HEALTHY"), awsvpc_task(2, TD, health="UNKNOWN"), first=True, health_check=True)
    aws.describe_tasks([task_arn(2)], [awsvpc_task(2, TD, health="HEALTHY")])
    aws.describe_tasks([task_arn(1), task_arn(2)], [awsvpc_task(1, TD, health="UNHEALTHY"), awsvpc_task(2, TD, health="HEALTHY")])

    awaiting = reader.refresh(CLUSTER, every_health_check=False)
    steady = reader.refresh(CLUSTER, every_health_check=True)

    assert awaiting.calls == {"DescribeTasks": 1} and steady.calls == {"DescribeTasks": 1}
    assert [t.container_health["app"] for t in steady.state.tasks] == ["UNHEALTHY", "HEALTHY"]
    # Now only the UNHEALTHY one waits for HEALTHY; once it is, nothing is left to refresh.
    aws.describe_tasks([task_arn(1)], [awsvpc_task(1, TD, health="HEALTHY")])
    assert reader.refresh(CLUSTER, every_health_check=False).calls == {"DescribeTasks": 1}
    assert reader.refresh(CLUSTER, every_health_check=False).calls == {}


# -- resyncs are authoritative ------------------------------------------------------------------


def test_a_forged_stopped_event_lasts_until_the_next_resync_and_its_verification(aws: Aws) -> None:
    reader = ClusterReader(aws.ecs, aws.ec2)
    running = awsvpc_task(1, TD, version=3)
    _read(aws, reader, running, first=True)

    forged = event_detail(awsvpc_task(1, TD, last="STOPPED", desired="STOPPED"), version=99)
    assert reader.apply(CLUSTER, [forged]).state.tasks == ()

    # The resync sees it RUNNING: kept out once (ECS reads are eventually consistent) ...
    _read(aws, reader, running)
    assert reader.state(CLUSTER).tasks == ()
    assert reader.table(CLUSTER).suspects == {task_arn(1)}
    # ... and the verification describe decides, whatever the versions.
    aws.describe_tasks([task_arn(1)], [running])
    state = reader.refresh(CLUSTER, every_health_check=False).state
    assert [t.arn for t in state.tasks] == [task_arn(1)]
    assert reader.table(CLUSTER).suspects == frozenset()
    # Real events count again from the version ECS reports.
    state = reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="STOPPED"), version=4)]).state
    assert state.tasks[0].desired_status == "STOPPED"


def test_a_forged_high_version_cannot_hide_later_real_events_past_a_resync(aws: Aws) -> None:
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, version=3), first=True)
    reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD), version=10**9)])
    # The real stop (version 4) looks old next to the forged version: ignored for now.
    assert reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="STOPPED"), version=4)]).applied == 0

    stopping = awsvpc_task(1, TD, desired="STOPPED", version=4)
    _read(aws, reader, stopping)
    aws.describe_tasks([task_arn(1)], [stopping])
    state = reader.refresh(CLUSTER, every_health_check=False).state

    assert state.tasks[0].desired_status == "STOPPED"


def test_a_resync_behind_an_event_keeps_the_event_until_verified(aws: Aws) -> None:
    """The benign case of the same rule: a describe lagging behind an event does not undo it."""
    reader = ClusterReader(aws.ecs, aws.ec2)
    _read(aws, reader, awsvpc_task(1, TD, version=3), first=True)
    reader.apply(CLUSTER, [event_detail(awsvpc_task(1, TD, desired="STOPPED"), version=4)])

    _read(aws, reader, awsvpc_task(1, TD, version=3))  # still listed RUNNING, older version

    assert reader.state(CLUSTER).tasks[0].desired_status == "STOPPED"
