"""Every supported operation through a real boto3 client, with botocore shape validation."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from .conftest import Recorder
from .helpers import container, wait_for

ALL_OPERATIONS = {
    "CreateCluster",
    "ListClusters",
    "DescribeClusters",
    "ListContainerInstances",
    "DescribeContainerInstances",
    "RegisterTaskDefinition",
    "DescribeTaskDefinition",
    "DeregisterTaskDefinition",
    "ListTaskDefinitions",
    "ListTaskDefinitionFamilies",
    "RunTask",
    "ListTasks",
    "DescribeTasks",
    "StopTask",
    "CreateService",
    "ListServices",
    "DescribeServices",
    "UpdateService",
    "DeleteService",
    "DescribeInstances",
}


def _code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_every_operation_round_trips_and_matches_botocore_shapes(ecs: Any, ec2: Any, recorder: Recorder) -> None:
    cluster = ecs.create_cluster(clusterName="shapes", tags=[{"key": "team", "value": "mesh"}])["cluster"]
    assert cluster["clusterArn"] == "arn:aws:ecs:us-east-1:000000000000:cluster/shapes"
    assert cluster["registeredContainerInstancesCount"] == 2
    assert ecs.list_clusters()["clusterArns"] == [cluster["clusterArn"]]
    described = ecs.describe_clusters(clusters=["shapes", "nope"], include=["TAGS", "SETTINGS"])
    assert described["clusters"][0]["clusterName"] == "shapes"
    assert described["failures"][0]["reason"] == "MISSING"

    instance_arns = ecs.list_container_instances(cluster="shapes")["containerInstanceArns"]
    assert len(instance_arns) == 2
    instances = ecs.describe_container_instances(cluster="shapes", containerInstances=instance_arns)["containerInstances"]
    assert all(i["ec2InstanceId"].startswith("i-") and len(i["ec2InstanceId"]) == 19 for i in instances)

    first = ecs.register_task_definition(
        family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[container(dockerLabels={"xds.service": "web", "xds.port": "8080"})],
        tags=[{"key": "k", "value": "v"}],
    )["taskDefinition"]
    second = ecs.register_task_definition(family="web", networkMode="awsvpc", containerDefinitions=[container()])["taskDefinition"]
    assert first["taskDefinitionArn"] == "arn:aws:ecs:us-east-1:000000000000:task-definition/web:1"
    assert second["revision"] == 2
    by_family = ecs.describe_task_definition(taskDefinition="web")["taskDefinition"]
    assert by_family["revision"] == 2
    by_revision = ecs.describe_task_definition(taskDefinition="web:1", include=["TAGS"])
    assert by_revision["taskDefinition"]["containerDefinitions"][0]["dockerLabels"] == {"xds.service": "web", "xds.port": "8080"}
    assert by_revision["tags"] == [{"key": "k", "value": "v"}]
    by_arn = ecs.describe_task_definition(taskDefinition=first["taskDefinitionArn"])["taskDefinition"]
    assert by_arn["revision"] == 1
    assert ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"] == [first["taskDefinitionArn"], second["taskDefinitionArn"]]
    assert ecs.list_task_definition_families()["families"] == ["web"]

    tasks = ecs.run_task(cluster="shapes", taskDefinition="web:1", count=2, startedBy="me", launchType="FARGATE",
                         networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"]}})["tasks"]
    arns = [t["taskArn"] for t in tasks]
    wait_for(lambda: all(t["lastStatus"] == "RUNNING" for t in ecs.describe_tasks(cluster="shapes", tasks=arns)["tasks"]), what="tasks RUNNING")
    assert sorted(ecs.list_tasks(cluster="shapes", startedBy="me")["taskArns"]) == sorted(arns)
    result = ecs.describe_tasks(cluster="shapes", tasks=arns + ["arn:aws:ecs:us-east-1:000000000000:task/shapes/" + "0" * 32], include=["TAGS"])
    assert len(result["tasks"]) == 2 and result["failures"][0]["reason"] == "MISSING"
    stopped = ecs.stop_task(cluster="shapes", task=arns[0], reason="test")["task"]
    assert stopped["desiredStatus"] == "STOPPED"

    service = ecs.create_service(cluster="shapes", serviceName="web", taskDefinition="web:2", desiredCount=1,
                                 networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}})["service"]
    assert service["serviceArn"] == "arn:aws:ecs:us-east-1:000000000000:service/shapes/web"
    assert ecs.list_services(cluster="shapes")["serviceArns"] == [service["serviceArn"]]
    wait_for(lambda: ecs.describe_services(cluster="shapes", services=["web"])["services"][0]["runningCount"] == 1, what="service running")
    described_services = ecs.describe_services(cluster="shapes", services=["web", "ghost"])
    assert described_services["failures"][0]["reason"] == "MISSING"
    ecs.update_service(cluster="shapes", service="web", desiredCount=2)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.delete_service(cluster="shapes", service="web")
    assert _code(exc) == "InvalidParameterException"
    deleted = ecs.delete_service(cluster="shapes", service="web", force=True)["service"]
    assert deleted["status"] == "DRAINING"
    ecs.deregister_task_definition(taskDefinition="web:1")
    assert ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]["status"] == "INACTIVE"

    reservations = ec2.describe_instances(InstanceIds=[i["ec2InstanceId"] for i in instances])["Reservations"]
    assert {r["Instances"][0]["PrivateIpAddress"] for r in reservations} == {"127.20.1.1", "127.20.2.1"}

    assert ALL_OPERATIONS <= recorder.operations()
    assert recorder.errors() == []


def test_errors_use_aws_codes(ecs: Any, ec2: Any, cluster: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.list_tasks(cluster="missing")
    assert _code(exc) == "ClusterNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.update_service(cluster=cluster, service="missing", desiredCount=1)
    assert _code(exc) == "ServiceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.describe_task_definition(taskDefinition="nothing:1")
    assert _code(exc) == "ClientException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecs.describe_tasks(cluster=cluster, tasks=[f"arn:aws:ecs:us-east-1:000000000000:task/{cluster}/{i:032x}" for i in range(101)])
    assert _code(exc) == "InvalidParameterException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ec2.describe_instances(InstanceIds=["i-00000000000000000"])
    assert _code(exc) == "InvalidInstanceID.NotFound"


def test_list_tasks_filters_and_pagination(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="a", containerDefinitions=[container(port=None)])
    ecs.register_task_definition(family="b", containerDefinitions=[container(port=None)])
    a_tasks = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition="a", count=5, startedBy="batch")["tasks"]]
    b_tasks = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition="b", count=1)["tasks"]]

    pages, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = ecs.list_tasks(cluster=cluster, maxResults=2, **kwargs)
        pages.append(page["taskArns"])
        token = page.get("nextToken")
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 2]
    assert sorted(sum(pages, [])) == sorted(a_tasks + b_tasks)
    paginator = ecs.get_paginator("list_tasks")
    assert sum(len(p["taskArns"]) for p in paginator.paginate(cluster=cluster, PaginationConfig={"PageSize": 4})) == 6

    assert sorted(ecs.list_tasks(cluster=cluster, family="a")["taskArns"]) == sorted(a_tasks)
    assert ecs.list_tasks(cluster=cluster, startedBy="batch", family="b")["taskArns"] == []
    assert ecs.list_tasks(cluster=cluster, desiredStatus="PENDING")["taskArns"] == []
    ecs.stop_task(cluster=cluster, task=b_tasks[0])
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == b_tasks
    assert b_tasks[0] not in ecs.list_tasks(cluster=cluster)["taskArns"]
    instance = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"][0]
    on_instance = ecs.list_tasks(cluster=cluster, containerInstance=instance)["taskArns"]
    assert 0 < len(on_instance) < 6
