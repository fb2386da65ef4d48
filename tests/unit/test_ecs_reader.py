"""ClusterReader against real boto3 clients stubbed with botocore's Stubber.

Stubber checks every request's parameters and every canned response against botocore's service
model, so these shapes are what ECS and EC2 really send and accept.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from controlplane.discovery.ecs import ClusterReader
from controlplane.discovery.state import ContainerEndpoint

REGION = "eu-west-1"
PREFIX = f"arn:aws:ecs:{REGION}:123456789012"
CLUSTER = "prod"


def _task_arn(i: int) -> str:
    return f"{PREFIX}:task/{CLUSTER}/{i:032x}"


def _td_arn(family: str, revision: int) -> str:
    return f"{PREFIX}:task-definition/{family}:{revision}"


def _ci_arn(name: str) -> str:
    return f"{PREFIX}:container-instance/{CLUSTER}/{name}"


def _task_definition(family: str, revision: int, mode: str) -> dict[str, Any]:
    return {
        "taskDefinition": {
            "taskDefinitionArn": _td_arn(family, revision),
            "family": family,
            "revision": revision,
            "networkMode": mode,
            "status": "ACTIVE",
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "routeguide:latest",
                    "portMappings": [{"containerPort": 50051, "hostPort": 0 if mode == "bridge" else 50051, "protocol": "tcp"}],
                    "dockerLabels": {"xds.service": family},
                }
            ],
        }
    }


def _awsvpc_task(i: int, td: str, *, last: str = "RUNNING", desired: str = "RUNNING", instance: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "taskArn": _task_arn(i),
        "clusterArn": f"{PREFIX}:cluster/{CLUSTER}",
        "taskDefinitionArn": td,
        "group": "service:orders",
        "lastStatus": last,
        "desiredStatus": desired,
        "healthStatus": "HEALTHY",
        "availabilityZone": "eu-west-1a",
        "launchType": "FARGATE" if instance is None else "EC2",
        "startedAt": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "attachments": [
            {
                "id": f"att-{i}",
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "networkInterfaceId", "value": f"eni-{i:08x}"},
                    {"name": "privateIPv4Address", "value": f"127.0.{i // 250}.{i % 250 + 1}"},
                ],
            }
        ],
        "containers": [{"name": "app", "lastStatus": last, "healthStatus": "HEALTHY", "networkBindings": []}],
    }
    if instance:
        raw["containerInstanceArn"] = _ci_arn(instance)
    return raw


def _bridge_task(i: int, td: str, instance: str, host_port: int) -> dict[str, Any]:
    return {
        "taskArn": _task_arn(i),
        "clusterArn": f"{PREFIX}:cluster/{CLUSTER}",
        "taskDefinitionArn": td,
        "containerInstanceArn": _ci_arn(instance),
        "group": "service:legacy",
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "availabilityZone": "eu-west-1b",
        "launchType": "EC2",
        "containers": [
            {
                "name": "app",
                "lastStatus": "RUNNING",
                "healthStatus": "UNKNOWN",
                "networkBindings": [{"bindIP": "0.0.0.0", "containerPort": 50051, "hostPort": host_port, "protocol": "tcp"}],
            }
        ],
    }


class Aws:
    """A stubbed ECS and EC2 client pair."""

    def __init__(self) -> None:
        self.ecs = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        self.ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        self.ecs_stub = Stubber(self.ecs)
        self.ec2_stub = Stubber(self.ec2)

    def list_tasks(self, status: str, pages: list[list[str]]) -> None:
        for index, arns in enumerate(pages):
            params: dict[str, Any] = {"cluster": CLUSTER, "desiredStatus": status, "maxResults": 100}
            if index:
                params["nextToken"] = f"token-{status}-{index}"
            response: dict[str, Any] = {"taskArns": arns}
            if index + 1 < len(pages):
                response["nextToken"] = f"token-{status}-{index + 1}"
            self.ecs_stub.add_response("list_tasks", response, params)

    def describe_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self.ecs_stub.add_response(
            "describe_tasks",
            {"tasks": tasks, "failures": []},
            {"cluster": CLUSTER, "tasks": [t["taskArn"] for t in tasks]},
        )

    def describe_task_definition(self, family: str, revision: int, mode: str) -> None:
        self.ecs_stub.add_response(
            "describe_task_definition", _task_definition(family, revision, mode), {"taskDefinition": _td_arn(family, revision)}
        )

    def describe_container_instances(self, instances: dict[str, str]) -> None:
        self.ecs_stub.add_response(
            "describe_container_instances",
            {
                "containerInstances": [
                    {"containerInstanceArn": _ci_arn(name), "ec2InstanceId": iid, "status": "ACTIVE"}
                    for name, iid in sorted(instances.items())
                ],
                "failures": [],
            },
            {"cluster": CLUSTER, "containerInstances": [_ci_arn(name) for name in sorted(instances)]},
        )

    def describe_instances(self, addresses: dict[str, str]) -> None:
        self.ec2_stub.add_response(
            "describe_instances",
            {
                "Reservations": [
                    {"Instances": [{"InstanceId": iid, "PrivateIpAddress": ip} for iid, ip in sorted(addresses.items())]}
                ]
            },
            {"InstanceIds": sorted(addresses)},
        )


@pytest.fixture
def aws() -> Iterator[Aws]:
    aws = Aws()
    with aws.ecs_stub, aws.ec2_stub:
        yield aws
        # Every stubbed call was made: none more (Stubber raises), none fewer (checked here).
        aws.ecs_stub.assert_no_pending_responses()
        aws.ec2_stub.assert_no_pending_responses()


def test_250_tasks_are_described_in_batches_of_100_and_task_definitions_once(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    tasks = [_awsvpc_task(i, td) for i in range(250)]
    arns = sorted(t["taskArn"] for t in tasks)
    aws.list_tasks("RUNNING", [arns[:100], arns[100:200], arns[200:]])
    aws.list_tasks("STOPPED", [[]])
    by_arn = {t["taskArn"]: t for t in tasks}
    for start in (0, 100, 200):
        aws.describe_tasks([by_arn[a] for a in arns[start : start + 100]])
    aws.describe_task_definition("orders", 3, "awsvpc")
    reader = ClusterReader(aws.ecs, aws.ec2)

    state, calls = reader.read(CLUSTER)

    assert calls == {"ListTasks": 4, "DescribeTasks": 3, "DescribeTaskDefinition": 1}
    assert len(state.tasks) == 250
    assert set(state.task_definitions) == {td}
    first = state.tasks[0]
    assert first.arn == _task_arn(0)
    assert first.endpoints == (ContainerEndpoint("app", 50051, "127.0.0.1", 50051),)
    assert first.started_at == datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp()
    assert first.service_name == "orders"


def test_task_definitions_are_cached_across_reads(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    reader = ClusterReader(aws.ecs, aws.ec2)
    for _ in range(2):
        aws.list_tasks("RUNNING", [[_task_arn(1)]])
        aws.list_tasks("STOPPED", [[]])
        aws.describe_tasks([_awsvpc_task(1, td)])
        if _ == 0:
            aws.describe_task_definition("orders", 3, "awsvpc")

    _, first_calls = reader.read(CLUSTER)
    state, second_calls = reader.read(CLUSTER)

    assert first_calls["DescribeTaskDefinition"] == 1
    assert "DescribeTaskDefinition" not in second_calls
    assert state.tasks[0].endpoints == (ContainerEndpoint("app", 50051, "127.0.0.2", 50051),)


def test_bridge_tasks_resolve_instance_addresses_once_and_awsvpc_tasks_never(aws: Aws) -> None:
    bridge_td = _td_arn("legacy", 1)
    vpc_td = _td_arn("orders", 3)
    tasks = [
        _bridge_task(1, bridge_td, "ci-a", 32768),
        _bridge_task(2, bridge_td, "ci-b", 32771),
        # awsvpc on EC2 has a container instance too, but its address is its own ENI.
        _awsvpc_task(3, vpc_td, instance="ci-c"),
    ]
    reader = ClusterReader(aws.ecs, aws.ec2)
    for read in range(2):
        aws.list_tasks("RUNNING", [[t["taskArn"] for t in tasks]])
        aws.list_tasks("STOPPED", [[]])
        aws.describe_tasks(tasks)
        if read == 0:
            aws.describe_task_definition("legacy", 1, "bridge")
            aws.describe_task_definition("orders", 3, "awsvpc")
            aws.describe_container_instances({"ci-a": "i-0aaa", "ci-b": "i-0bbb"})
            aws.describe_instances({"i-0aaa": "127.1.0.10", "i-0bbb": "127.1.0.11"})

    _, first_calls = reader.read(CLUSTER)
    state, second_calls = reader.read(CLUSTER)

    assert first_calls == {
        "ListTasks": 2,
        "DescribeTasks": 1,
        "DescribeTaskDefinition": 2,
        "DescribeContainerInstances": 1,
        "ec2:DescribeInstances": 1,
    }
    assert second_calls == {"ListTasks": 2, "DescribeTasks": 1}
    assert [t.endpoints for t in state.tasks] == [
        (ContainerEndpoint("app", 50051, "127.1.0.10", 32768),),
        (ContainerEndpoint("app", 50051, "127.1.0.11", 32771),),
        (ContainerEndpoint("app", 50051, "127.0.0.4", 50051),),
    ]


def test_stopped_tasks_are_skipped_and_draining_ones_kept(aws: Aws) -> None:
    td = _td_arn("orders", 3)
    running = _awsvpc_task(1, td)
    draining = _awsvpc_task(2, td, last="RUNNING", desired="STOPPED")
    stopped = _awsvpc_task(3, td, last="STOPPED", desired="STOPPED")
    aws.list_tasks("RUNNING", [[running["taskArn"]]])
    aws.list_tasks("STOPPED", [[draining["taskArn"], stopped["taskArn"]]])
    aws.describe_tasks([running, draining, stopped])
    aws.describe_task_definition("orders", 3, "awsvpc")

    state, _ = ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)

    assert [(t.arn, t.last_status, t.desired_status) for t in state.tasks] == [
        (_task_arn(1), "RUNNING", "RUNNING"),
        (_task_arn(2), "RUNNING", "STOPPED"),
    ]


def test_stopped_only_task_definitions_are_never_described(aws: Aws) -> None:
    stopped = _awsvpc_task(3, _td_arn("gone", 9), last="STOPPED", desired="STOPPED")
    aws.list_tasks("RUNNING", [[]])
    aws.list_tasks("STOPPED", [[stopped["taskArn"]]])
    aws.describe_tasks([stopped])

    state, calls = ClusterReader(aws.ecs, aws.ec2).read(CLUSTER)

    assert state.tasks == () and dict(state.task_definitions) == {}
    assert "DescribeTaskDefinition" not in calls


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
