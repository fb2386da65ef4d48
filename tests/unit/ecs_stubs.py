"""Real boto3 ECS/EC2 clients stubbed with botocore's Stubber, and task shapes written from AWS's
documentation (the DescribeTasks example of the ECS API reference; the "ECS Task State Change"
event example of the EventBridge events reference).

Stubber checks every request's parameters and every canned response against botocore's service
model, so these shapes are what ECS and EC2 really send and accept.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any, Mapping

import boto3
from botocore.stub import Stubber

REGION = "eu-west-1"
PREFIX = f"arn:aws:ecs:{REGION}:123456789012"
CLUSTER = "prod"


def task_arn(i: int, cluster: str = CLUSTER) -> str:
    return f"{PREFIX}:task/{cluster}/{i:032x}"


def td_arn(family: str, revision: int) -> str:
    return f"{PREFIX}:task-definition/{family}:{revision}"


def ci_arn(name: str) -> str:
    return f"{PREFIX}:container-instance/{CLUSTER}/{name}"


def task_definition(
    family: str, revision: int, mode: str, *, health_check: bool = False, sidecar: bool = False
) -> dict[str, Any]:
    app: dict[str, Any] = {
        "name": "app",
        "image": "routeguide:latest",
        "essential": True,
        "portMappings": [{"containerPort": 50051, "hostPort": 0 if mode == "bridge" else 50051, "protocol": "tcp"}],
        "dockerLabels": {"xds.service": family},
    }
    if health_check:
        app["healthCheck"] = {"command": ["CMD-SHELL", "grpc_health_probe -addr=:50051"], "interval": 5, "retries": 3}
    containers = [app]
    if sidecar:
        containers.append(
            {
                "name": "metrics",
                "image": "metrics:latest",
                "essential": False,
                "portMappings": [{"containerPort": 9100, "protocol": "tcp"}],
                "dockerLabels": {"xds.service": f"{family}-metrics", "xds.protocol": "http"},
            }
        )
    return {
        "taskDefinitionArn": td_arn(family, revision),
        "family": family,
        "revision": revision,
        "networkMode": mode,
        "status": "ACTIVE",
        "containerDefinitions": containers,
    }


def awsvpc_task(
    i: int,
    td: str,
    *,
    last: str = "RUNNING",
    desired: str = "RUNNING",
    health: str = "UNKNOWN",
    instance: str | None = None,
    version: int = 3,
    started_by: str = "ecs-svc/9223370560032507596",
) -> dict[str, Any]:
    """A Fargate (or awsvpc on EC2) task as DescribeTasks returns it."""
    raw: dict[str, Any] = {
        "taskArn": task_arn(i),
        "clusterArn": f"{PREFIX}:cluster/{CLUSTER}",
        "taskDefinitionArn": td,
        "group": "service:orders",
        "lastStatus": last,
        "desiredStatus": desired,
        "healthStatus": health,
        "availabilityZone": "eu-west-1a",
        "launchType": "FARGATE" if instance is None else "EC2",
        "startedBy": started_by,
        "version": version,
        "createdAt": datetime(2025, 1, 2, 3, 4, 0, tzinfo=timezone.utc),
        "startedAt": datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "attachments": [
            {
                "id": f"att-{i}",
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": "subnet-0abc"},
                    {"name": "networkInterfaceId", "value": f"eni-{i:08x}"},
                    {"name": "privateIPv4Address", "value": f"127.0.{i // 250}.{i % 250 + 1}"},
                ],
            }
        ],
        "containers": [
            {
                "containerArn": f"{PREFIX}:container/{CLUSTER}/{i:032x}/app",
                "taskArn": task_arn(i),
                "name": "app",
                "lastStatus": last if last in ("RUNNING", "STOPPED", "PENDING") else "RUNNING",
                "healthStatus": health,
                "networkBindings": [],
                "networkInterfaces": [{"attachmentId": f"att-{i}", "privateIpv4Address": f"127.0.{i // 250}.{i % 250 + 1}"}],
            }
        ],
    }
    if instance:
        raw["containerInstanceArn"] = ci_arn(instance)
    return raw


def bridge_task(i: int, td: str, instance: str, host_port: int) -> dict[str, Any]:
    """The documented DescribeTasks example (console-sample-app-dynamic-ports): EC2, bridge, a
    dynamic host port, and Docker's IPv4 and IPv6 bindings."""
    return {
        "taskArn": task_arn(i),
        "clusterArn": f"{PREFIX}:cluster/{CLUSTER}",
        "taskDefinitionArn": td,
        "containerInstanceArn": ci_arn(instance),
        "group": "service:legacy",
        "lastStatus": "RUNNING",
        "desiredStatus": "RUNNING",
        "availabilityZone": "eu-west-1b",
        "launchType": "EC2",
        "version": 2,
        "containers": [
            {
                "name": "app",
                "lastStatus": "RUNNING",
                "healthStatus": "UNKNOWN",
                "networkBindings": [
                    {"bindIP": "0.0.0.0", "containerPort": 50051, "hostPort": host_port, "protocol": "tcp"},
                    {"bindIP": "::", "containerPort": 50051, "hostPort": host_port, "protocol": "tcp"},
                ],
            }
        ],
    }


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def event_detail(raw: Mapping[str, Any], *, version: int | None = None) -> dict[str, Any]:
    """An "ECS Task State Change" detail for a described task, as EventBridge sends it: ISO
    timestamps, `updatedAt`, and no `healthStatus` anywhere (ECS events carry none)."""
    detail = _iso(copy.deepcopy(dict(raw)))
    detail.pop("healthStatus", None)
    for container in detail.get("containers", ()):
        container.pop("healthStatus", None)
    detail["updatedAt"] = "2025-01-02T03:04:06.123Z"
    if version is not None:
        detail["version"] = version
    return detail


def event_body(detail: Mapping[str, Any], detail_type: str = "ECS Task State Change") -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "3317b2af-7005-947d-b652-f55e762e571a",
            "detail-type": detail_type,
            "source": "aws.ecs",
            "account": "123456789012",
            "time": "2025-01-02T03:04:06Z",
            "region": REGION,
            "resources": [detail.get("taskArn", "")],
            "detail": detail,
        }
    )


class Aws:
    """A stubbed ECS and EC2 client pair."""

    def __init__(self) -> None:
        self.ecs = boto3.client("ecs", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        self.ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
        self.ecs_stub = Stubber(self.ecs)
        self.ec2_stub = Stubber(self.ec2)

    def list_tasks(self, pages: list[list[str]], cluster: str = CLUSTER) -> None:
        for index, arns in enumerate(pages):
            params: dict[str, Any] = {"cluster": cluster, "desiredStatus": "RUNNING", "maxResults": 100}
            if index:
                params["nextToken"] = f"token-{index}"
            response: dict[str, Any] = {"taskArns": arns}
            if index + 1 < len(pages):
                response["nextToken"] = f"token-{index + 1}"
            self.ecs_stub.add_response("list_tasks", response, params)

    def describe_tasks(self, asked: list[str], tasks: list[dict[str, Any]], cluster: str = CLUSTER) -> None:
        missing = [{"arn": arn, "reason": "MISSING"} for arn in asked if arn not in {t["taskArn"] for t in tasks}]
        self.ecs_stub.add_response("describe_tasks", {"tasks": tasks, "failures": missing}, {"cluster": cluster, "tasks": asked})

    def describe_task_definition(self, family: str, revision: int, mode: str, **options: Any) -> None:
        self.ecs_stub.add_response(
            "describe_task_definition",
            {"taskDefinition": task_definition(family, revision, mode, **options)},
            {"taskDefinition": td_arn(family, revision)},
        )

    def describe_container_instances(self, instances: dict[str, str]) -> None:
        self.ecs_stub.add_response(
            "describe_container_instances",
            {
                "containerInstances": [
                    {"containerInstanceArn": ci_arn(name), "ec2InstanceId": iid, "status": "ACTIVE"}
                    for name, iid in sorted(instances.items())
                ],
                "failures": [],
            },
            {"cluster": CLUSTER, "containerInstances": [ci_arn(name) for name in sorted(instances)]},
        )

    def describe_instances(self, addresses: dict[str, str]) -> None:
        self.ec2_stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": [{"InstanceId": iid, "PrivateIpAddress": ip} for iid, ip in sorted(addresses.items())]}]},
            {"InstanceIds": sorted(addresses)},
        )
