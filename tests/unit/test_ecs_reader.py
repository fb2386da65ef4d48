"""Full reads of a cluster (polling, resyncs) against stubbed boto3 clients: what they cost and
what they show."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Iterator

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from controlplane.discovery.aws_session import lean_session
from controlplane.discovery.ecs_api import DescribeFailure
from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.state import ContainerEndpoint
from controlplane.discovery.task_shape import timestamp
from controlplane.discovery.taskdefs import TaskDefinitionCache

from .ecs_stubs import CLUSTER, Aws, awsvpc_task, bridge_task, task_arn, td_arn


@pytest.fixture
def aws() -> Iterator[Aws]:
    aws = Aws()
    with aws.ecs_stub, aws.ec2_stub:
        yield aws
        # Every stubbed call was made: none more (Stubber raises), none fewer (checked here).
        aws.ecs_stub.assert_no_pending_responses()
        aws.ec2_stub.assert_no_pending_responses()


def test_250_tasks_cost_3_list_pages_3_describes_and_one_task_definition(aws: Aws) -> None:
    td = td_arn("orders", 3)
    tasks = [awsvpc_task(i, td) for i in range(250)]
    arns = sorted(t["taskArn"] for t in tasks)
    aws.list_tasks([arns[:100], arns[100:200], arns[200:]])
    by_arn = {t["taskArn"]: t for t in tasks}
    for start in (0, 100, 200):
        aws.describe_tasks(arns[start : start + 100], [by_arn[a] for a in arns[start : start + 100]])
    aws.describe_task_definition("orders", 3, "awsvpc")

    state, calls, _ = ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)

    # No ListTasks(desiredStatus=STOPPED): draining tasks are found by describing those that
    # left the RUNNING list.
    assert calls == {"ListTasks": 3, "DescribeTasks": 3, "DescribeTaskDefinition": 1}
    assert len(state.tasks) == 250
    assert set(state.task_definitions) == {td}
    first = state.tasks[0]
    assert first.arn == task_arn(0)
    assert first.endpoints == (ContainerEndpoint("app", 50051, "127.0.0.1", 50051),)
    assert first.started_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    assert first.service_name == "orders"
    assert first.started_by == "ecs-svc/9223370560032507596"


def test_an_unchanged_cluster_costs_one_list_and_one_describe_per_poll(aws: Aws) -> None:
    td = td_arn("orders", 3)
    reader = ClusterReader(aws.ecs, aws.ec2)
    for read in range(3):
        aws.list_tasks([[task_arn(1), task_arn(2)]])
        aws.describe_tasks([task_arn(1), task_arn(2)], [awsvpc_task(1, td), awsvpc_task(2, td)])
        if read == 0:
            aws.describe_task_definition("orders", 3, "awsvpc")

    costs = [reader.read(CLUSTER).calls for _ in range(3)]

    assert costs[1:] == [{"ListTasks": 1, "DescribeTasks": 1}] * 2


def test_one_task_definition_cache_serves_every_cluster(aws: Aws) -> None:
    td = td_arn("orders", 3)
    shared = TaskDefinitionCache()  # empty, so falsy: must still be the one used
    for cluster in ("prod", "staging"):
        aws.list_tasks([[task_arn(1, cluster)]], cluster=cluster)
        raw = awsvpc_task(1, td)
        raw["taskArn"] = task_arn(1, cluster)
        aws.describe_tasks([task_arn(1, cluster)], [raw], cluster=cluster)
        if cluster == "prod":
            aws.describe_task_definition("orders", 3, "awsvpc")

    prod = ClusterReader(aws.ecs, aws.ec2, shared).read("prod")
    staging = ClusterReader(aws.ecs, aws.ec2, shared).read("staging")

    assert prod.calls["DescribeTaskDefinition"] == 1
    assert "DescribeTaskDefinition" not in staging.calls
    assert len(shared) == 1


def test_bridge_tasks_resolve_instance_addresses_once_and_awsvpc_tasks_never(aws: Aws) -> None:
    bridge_td = td_arn("legacy", 1)
    vpc_td = td_arn("orders", 3)
    tasks = [
        bridge_task(1, bridge_td, "ci-a", 32768),
        bridge_task(2, bridge_td, "ci-b", 32771),
        # awsvpc on EC2 has a container instance too, but its address is its own ENI.
        awsvpc_task(3, vpc_td, instance="ci-c"),
    ]
    reader = ClusterReader(aws.ecs, aws.ec2)
    for read in range(2):
        aws.list_tasks([[t["taskArn"] for t in tasks]])
        aws.describe_tasks([t["taskArn"] for t in tasks], tasks)
        if read == 0:
            aws.describe_task_definition("legacy", 1, "bridge")
            aws.describe_task_definition("orders", 3, "awsvpc")
            aws.describe_container_instances({"ci-a": "i-0aaa", "ci-b": "i-0bbb"})
            aws.describe_instances({"i-0aaa": "127.1.0.10", "i-0bbb": "127.1.0.11"})

    first_calls = reader.read(CLUSTER).calls
    state, second_calls, _ = reader.read(CLUSTER)

    assert first_calls == {
        "ListTasks": 1,
        "DescribeTasks": 1,
        "DescribeTaskDefinition": 2,
        "DescribeContainerInstances": 1,
        "ec2:DescribeInstances": 1,
    }
    assert second_calls == {"ListTasks": 1, "DescribeTasks": 1}
    # One endpoint per container port, although Docker reports an IPv4 and an IPv6 binding.
    assert [t.endpoints for t in state.tasks] == [
        (ContainerEndpoint("app", 50051, "127.1.0.10", 32768),),
        (ContainerEndpoint("app", 50051, "127.1.0.11", 32771),),
        (ContainerEndpoint("app", 50051, "127.0.0.4", 50051),),
    ]


def test_a_task_that_leaves_the_running_list_is_described_until_stopped_then_forgotten(aws: Aws) -> None:
    td = td_arn("orders", 3)
    one, two = task_arn(1), task_arn(2)
    reader = ClusterReader(aws.ecs, aws.ec2)
    aws.list_tasks([[one, two]])
    aws.describe_tasks([one, two], [awsvpc_task(1, td), awsvpc_task(2, td)])
    aws.describe_task_definition("orders", 3, "awsvpc")
    # Task 2 was asked to stop: ListTasks(RUNNING) no longer names it; describing it shows it draining.
    aws.list_tasks([[one]])
    aws.describe_tasks([one, two], [awsvpc_task(1, td), awsvpc_task(2, td, desired="STOPPED", version=4)])
    aws.list_tasks([[one]])
    aws.describe_tasks([one, two], [awsvpc_task(1, td), awsvpc_task(2, td, last="STOPPED", desired="STOPPED", version=6)])
    # Stopped: never described again.
    aws.list_tasks([[one]])
    aws.describe_tasks([one], [awsvpc_task(1, td)])

    views = [reader.read(CLUSTER).state for _ in range(4)]

    assert [(t.id[-1], t.desired_status) for t in views[0].tasks] == [("1", "RUNNING"), ("2", "RUNNING")]
    assert [(t.id[-1], t.desired_status) for t in views[1].tasks] == [("1", "RUNNING"), ("2", "STOPPED")]
    assert [t.id[-1] for t in views[2].tasks] == ["1"]
    assert [t.id[-1] for t in views[3].tasks] == ["1"]


def test_a_task_ecs_no_longer_knows_is_dropped(aws: Aws) -> None:
    td = td_arn("orders", 3)
    reader = ClusterReader(aws.ecs, aws.ec2)
    aws.list_tasks([[task_arn(1)]])
    aws.describe_tasks([task_arn(1)], [awsvpc_task(1, td)])
    aws.describe_task_definition("orders", 3, "awsvpc")
    aws.list_tasks([[]])
    aws.describe_tasks([task_arn(1)], [])  # failures: MISSING

    reader.read(CLUSTER)
    assert reader.read(CLUSTER).state.tasks == ()


def test_stopped_only_task_definitions_are_never_described(aws: Aws) -> None:
    stopped = awsvpc_task(3, td_arn("gone", 9), last="STOPPED", desired="STOPPED")
    aws.list_tasks([[stopped["taskArn"]]])
    aws.describe_tasks([stopped["taskArn"]], [stopped])

    state, calls, _ = ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)

    assert state.tasks == () and dict(state.task_definitions) == {}
    assert "DescribeTaskDefinition" not in calls


def test_a_describe_tasks_failure_other_than_missing_fails_the_whole_read(aws: Aws) -> None:
    td = td_arn("orders", 3)
    arns = [task_arn(1), task_arn(2)]
    aws.list_tasks([arns])
    aws.ecs_stub.add_response(
        "describe_tasks",
        {"tasks": [awsvpc_task(1, td)], "failures": [{"arn": arns[1], "reason": "SERVICE_UNAVAILABLE"}]},
        {"cluster": CLUSTER, "tasks": arns},
    )
    with pytest.raises(DescribeFailure, match="SERVICE_UNAVAILABLE"):
        ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)


def test_an_api_error_propagates_with_its_code(aws: Aws) -> None:
    aws.ecs_stub.add_client_error(
        "list_tasks",
        service_error_code="ThrottlingException",
        service_message="Rate exceeded",
        http_status_code=400,
        expected_params={"cluster": CLUSTER, "desiredStatus": "RUNNING", "maxResults": 100},
    )

    with pytest.raises(ClientError, match="ThrottlingException.*Rate exceeded"):
        ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)


def test_health_and_container_status_come_from_describe_tasks(aws: Aws) -> None:
    td = td_arn("orders", 3)
    raw = awsvpc_task(1, td, health="HEALTHY")
    raw["containers"].append({"name": "metrics", "lastStatus": "STOPPED", "exitCode": 1, "networkBindings": []})
    aws.list_tasks([[task_arn(1)]])
    aws.describe_tasks([task_arn(1)], [raw])
    aws.describe_task_definition("orders", 3, "awsvpc", health_check=True, sidecar=True)

    state, _, _ = ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)

    task = state.tasks[0]
    assert task.container_health == {"app": "HEALTHY", "metrics": "UNKNOWN"}
    assert task.container_last_status("app") == "RUNNING"
    assert task.container_last_status("metrics") == "STOPPED"
    assert state.task_definitions[td].containers[0].health_check is True
    assert state.task_definitions[td].containers[1].health_check is False


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def test_wire_timestamps_are_kept_as_numbers_by_the_lean_session_and_read_as_epoch_seconds() -> None:
    """What ECS puts on the wire (`1.731532991984E9`), through botocore's real parser."""
    fields = {k: v for k, v in awsvpc_task(1, td_arn("orders", 3)).items() if not k.endswith("At")}
    text = json.dumps({"tasks": [fields], "failures": []})
    text = text.replace('"taskArn"', '"createdAt": 1.731532990E9, "startedAt": 1.731532991984E9, "taskArn"', 1)
    ecs = lean_session("eu-west-1").client("ecs", aws_access_key_id="x", aws_secret_access_key="x")
    ecs.meta.events.register("before-send.ecs.*", lambda request, **_: AWSResponse(request.url, 200, {}, _Body(text.encode())))

    answer = ecs.describe_tasks(cluster=CLUSTER, tasks=[task_arn(1)])

    assert answer["tasks"][0]["startedAt"] == 1731532991.984  # a number: no datetime built
    assert timestamp(answer["tasks"][0]["startedAt"]) == 1731532991.984
    # Events carry ISO strings with milliseconds, trailing zeros dropped.
    assert timestamp("2024-11-13T20:56:36.54Z") == datetime(2024, 11, 13, 20, 56, 36, 540000, tzinfo=timezone.utc).timestamp()
