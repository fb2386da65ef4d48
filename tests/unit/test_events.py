"""Event mode: parsing EventBridge bodies, merging task changes by version, deleting messages only
after the change is published, debouncing bursts."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Mapping

import pytest

from controlplane.discovery.ecs import ClusterReader, DescribeFailure
from controlplane.discovery.events import QueueMessage, TaskChange, parse_message
from controlplane.discovery.poller import Debounce, PollingDiscovery
from controlplane.discovery.state import ClusterState, ContainerEndpoint

from .test_ecs_reader import CLUSTER, PREFIX, Aws, _awsvpc_task, _task_arn, _td_arn, aws  # noqa: F401 - aws is a fixture


def _event(detail: Mapping[str, Any], detail_type: str = "ECS Task State Change") -> str:
    return json.dumps(
        {"version": "0", "id": "e1", "detail-type": detail_type, "source": "aws.ecs", "account": "123456789012",
         "time": "2025-01-02T03:04:05Z", "region": "eu-west-1", "resources": [detail.get("taskArn")], "detail": detail},
        default=str,
    )


def _detail(i: int, td: str, *, version: int, last: str = "RUNNING", desired: str = "RUNNING") -> dict[str, Any]:
    detail = _awsvpc_task(i, td, last=last, desired=desired)
    detail["version"] = version
    detail["updatedAt"] = "2025-01-02T03:04:05.123Z"
    detail["startedAt"] = "2025-01-02T03:04:05.000Z"
    return detail


def test_task_state_change_bodies_are_parsed_and_other_events_ignored() -> None:
    td = _td_arn("orders", 3)
    change = parse_message(_event(_detail(1, td, version=4)))
    assert change is not None and change.cluster == CLUSTER and change.task_arn == _task_arn(1) and change.version == 4
    sns = json.dumps({"Type": "Notification", "Message": _event(_detail(2, td, version=1))})
    assert parse_message(sns) is not None and parse_message(sns).task_arn == _task_arn(2)  # type: ignore[union-attr]
    assert parse_message(_event({"eventName": "SERVICE_STEADY_STATE"}, "ECS Service Action")) is None
    assert parse_message("not json") is None


def test_complete_details_are_applied_without_calls_and_older_or_duplicate_ones_ignored(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    aws.describe_task_definition("orders", 3, "awsvpc")
    reader = ClusterReader(aws.ecs, aws.ec2)

    state, calls, applied = reader.apply(CLUSTER, [_detail(1, td, version=3)])
    assert calls == {"DescribeTaskDefinition": 1} and applied == 1
    assert state.tasks[0].endpoints == (ContainerEndpoint("app", 50051, "127.0.0.2", 50051),)

    # A late (older) event and a duplicate change nothing and cost nothing.
    state, calls, applied = reader.apply(CLUSTER, [_detail(1, td, version=2, desired="RUNNING"), _detail(1, td, version=3)])
    assert calls == {} and applied == 0 and state.tasks[0].desired_status == "RUNNING"

    # Newer: draining at once.
    state, _, applied = reader.apply(CLUSTER, [_detail(1, td, version=4, desired="STOPPED")])
    assert applied == 1 and state.tasks[0].desired_status == "STOPPED"

    # Stopped, then a reordered RUNNING event from before: the task never comes back.
    state, _, _ = reader.apply(CLUSTER, [_detail(1, td, version=7, last="STOPPED", desired="STOPPED")])
    assert state.tasks == ()
    state, _, applied = reader.apply(CLUSTER, [_detail(1, td, version=5)])
    assert state.tasks == () and applied == 0


def test_a_detail_without_an_address_is_described(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    incomplete = _detail(1, td, version=3)
    incomplete["attachments"] = []
    incomplete["containers"] = [{"name": "app", "lastStatus": "RUNNING"}]
    aws.describe_task_definition("orders", 3, "awsvpc")
    full = _awsvpc_task(1, td)
    full["version"] = 3
    aws.describe_tasks([full])

    state, calls, applied = ClusterReader(aws.ecs, aws.ec2).apply(CLUSTER, [incomplete])

    assert calls == {"DescribeTaskDefinition": 1, "DescribeTasks": 1} and applied == 1
    assert state.tasks[0].endpoints[0].address == "127.0.0.2"


def test_a_describe_tasks_failure_other_than_missing_fails_the_whole_read(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    arns = [_task_arn(1), _task_arn(2)]
    aws.list_tasks("RUNNING", [arns])
    aws.list_tasks("STOPPED", [[]])
    aws.ecs_stub.add_response(
        "describe_tasks",
        {"tasks": [_awsvpc_task(1, td)], "failures": [{"arn": arns[1], "reason": "SERVICE_UNAVAILABLE"}]},
        {"cluster": CLUSTER, "tasks": arns},
    )
    with pytest.raises(DescribeFailure, match="SERVICE_UNAVAILABLE"):
        ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)


# -- the discovery loop with a fake reader and a fake queue ---------------------------------------


class FakeQueue:
    failing = False
    queue_url = "http://127.0.0.1/000000000000/events"

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, messages: list[QueueMessage]) -> int:
        self.deleted.extend(m.receipt_handle for m in messages)
        return 1


class FakeReader:
    def __init__(self, state: ClusterState, fail_apply: bool = False) -> None:
        self.state = state
        self.fail_apply = fail_apply
        self.applied: list[list[Mapping[str, Any]]] = []

    def read(self, cluster: str) -> tuple[ClusterState, Mapping[str, int]]:
        return self.state, {"ListTasks": 2}

    def apply(self, cluster: str, details: list[Mapping[str, Any]], trust_details: bool = True) -> tuple[ClusterState, Mapping[str, int], int]:
        if self.fail_apply:
            raise RuntimeError("ThrottlingException")
        self.applied.append(details)
        return ClusterState(cluster, self.state.tasks, {}, self.state.synced_at + 1), {}, len(details)


def _message(handle: str, cluster: str, version: int) -> QueueMessage:
    detail = _detail(1, _td_arn("orders", 3), version=version)
    detail["clusterArn"] = f"{PREFIX}:cluster/{cluster}"
    return QueueMessage(handle, _event(detail))


def _discovery(reader: FakeReader) -> tuple[PollingDiscovery, FakeQueue, list[list[ClusterState]]]:
    published: list[list[ClusterState]] = []
    queue = FakeQueue()
    discovery = PollingDiscovery([CLUSTER], object(), object(), published.append, events=queue)  # type: ignore[arg-type]
    discovery._readers = {CLUSTER: reader}
    return discovery, queue, published


def test_messages_are_deleted_after_the_change_is_applied_and_kept_when_it_fails() -> None:
    empty = ClusterState(CLUSTER, (), {}, 1.0)

    async def scenario(fail: bool) -> tuple[FakeQueue, FakeReader]:
        reader = FakeReader(empty, fail_apply=fail)
        discovery, queue, _ = _discovery(reader)
        await discovery.sync_once()
        await discovery.apply_messages(
            [_message("a", CLUSTER, 1), _message("b", CLUSTER, 2), _message("other", "elsewhere", 1), QueueMessage("junk", "{}")]
        )
        return queue, reader

    queue, reader = asyncio.run(scenario(fail=False))
    assert sorted(queue.deleted) == ["a", "b", "junk", "other"]
    assert [len(batch) for batch in reader.applied] == [2]

    queue, reader = asyncio.run(scenario(fail=True))
    # Not applied: only the messages that were not ours are deleted; the rest come back.
    assert sorted(queue.deleted) == ["junk", "other"]


def test_nothing_from_events_is_applied_before_the_first_full_read() -> None:
    async def scenario() -> tuple[FakeQueue, list[list[ClusterState]]]:
        discovery, queue, published = _discovery(FakeReader(ClusterState(CLUSTER, (), {}, 1.0)))
        await discovery.apply_messages([_message("a", CLUSTER, 1)])
        return queue, published

    queue, published = asyncio.run(scenario())
    assert queue.deleted == [] and published == []


def test_a_burst_is_collected_until_quiet_and_bounded_by_the_maximum() -> None:
    async def scenario() -> tuple[int, int]:
        discovery, _, _ = _discovery(FakeReader(ClusterState(CLUSTER, (), {}, 1.0)))
        discovery._debounce = Debounce(quiet=0.05, max=0.3)
        inbox: asyncio.Queue[list[QueueMessage]] = asyncio.Queue()

        async def drip(count: int, gap: float) -> None:
            for i in range(count):
                inbox.put_nowait([QueueMessage(str(i), "{}")])
                await asyncio.sleep(gap)

        feeder = asyncio.create_task(drip(3, 0.01))
        quiet_burst = await discovery._collect(inbox, 1.0)
        await feeder
        feeder = asyncio.create_task(drip(100, 0.02))  # never quiet: cut at the maximum
        bounded = await discovery._collect(inbox, 1.0)
        feeder.cancel()
        return len(quiet_burst), len(bounded)

    quiet, bounded = asyncio.run(scenario())
    assert quiet == 3
    assert 5 <= bounded <= 20


def test_task_change_version() -> None:
    assert TaskChange("c", "arn", {"version": 3}).version == 3
    assert TaskChange("c", "arn", {}).version is None
