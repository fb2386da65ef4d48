"""The local event stream through the local SQS: EventBridge-shaped bodies, long polling,
delete semantics, injected faults; every response checked against botocore's SQS/SSM shapes."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from controlplane.localecs import LocalEcsServer

from .shape_check import _SESSION, _check_json


def _shape_errors(service: str, operation: str, body: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    shape = _SESSION.get_service_model(service).operation_model(operation).output_shape
    if shape is None:
        return [] if body == {} else [f"{operation}: expected an empty body, got {body!r}"]
    _check_json(body, shape, operation, errors)
    return errors


@pytest.fixture
def local(tmp_path: Any) -> Any:
    srv = LocalEcsServer(
        provisioning_seconds=0.02, pending_seconds=0.02, deactivating_seconds=0.05, processes=False,
        external_instances_per_cluster=1, event_queues=["events"], log_dir=str(tmp_path), seed=1,
    ).start()
    raw: list[tuple[str, str, bytes]] = []
    clients = {}
    for service in ("ecs", "sqs", "ssm"):
        client = boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        client.meta.events.register(
            "after-call", lambda http_response, model, _s=service, **_: raw.append((_s, model.name, http_response.content)) if http_response.status_code == 200 else None
        )
        clients[service] = client
    try:
        yield srv, clients, raw
    finally:
        srv.close()


def test_task_changes_arrive_as_eventbridge_events_and_deletes_stick(local: Any) -> None:
    srv, c, raw = local
    c["ecs"].create_cluster(clusterName="ev")
    td = c["ecs"].register_task_definition(
        family="f", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        containerDefinitions=[{"name": "app", "image": "x", "portMappings": [{"containerPort": 80}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    task = c["ecs"].run_task(cluster="ev", taskDefinition=td, launchType="FARGATE")["tasks"][0]
    url = c["sqs"].get_queue_url(QueueName="events")["QueueUrl"]
    deadline, events = time.monotonic() + 5, []
    while time.monotonic() < deadline and not any(e["detail"]["lastStatus"] == "RUNNING" for e in events):
        response = c["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"])
        for message in response.get("Messages", []):
            events.append(json.loads(message["Body"]))
            c["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert [e["detail"]["lastStatus"] for e in events][:3] == ["PROVISIONING", "PENDING", "RUNNING"]
    event = events[-1]
    assert event["source"] == "aws.ecs" and event["detail-type"] == "ECS Task State Change"
    assert event["resources"] == [task["taskArn"]]
    detail = event["detail"]
    assert detail["version"] == 3 and detail["updatedAt"].endswith("Z") and detail["startedAt"].endswith("Z")
    described = c["ecs"].describe_tasks(cluster="ev", tasks=[task["taskArn"]])["tasks"][0]
    assert detail["version"] == described["version"]
    assert detail["attachments"][0]["details"][-1]["value"] == described["attachments"][0]["details"][-1]["value"]
    # Deleted messages do not come back; an empty long poll waits.
    started = time.monotonic()
    assert "Messages" not in c["sqs"].receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert time.monotonic() - started >= 0.9
    assert c["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert [e for s, op, body in raw for e in _shape_errors(s, op, json.loads(body))] == []


def test_visibility_timeout_redelivers_and_batch_delete_reports(local: Any) -> None:
    srv, c, raw = local
    url = c["sqs"].create_queue(QueueName="plain")["QueueUrl"]
    c["sqs"].send_message(QueueUrl=url, MessageBody="hello")
    first = c["sqs"].receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"][0]
    assert "Messages" not in c["sqs"].receive_message(QueueUrl=url)
    again = c["sqs"].receive_message(QueueUrl=url, WaitTimeSeconds=3)["Messages"][0]
    assert again["MessageId"] == first["MessageId"] and again["ReceiptHandle"] != first["ReceiptHandle"]
    result = c["sqs"].delete_message_batch(QueueUrl=url, Entries=[{"Id": "1", "ReceiptHandle": again["ReceiptHandle"]}])
    assert [s["Id"] for s in result["Successful"]] == ["1"]
    with pytest.raises(ClientError) as error:
        c["sqs"].get_queue_url(QueueName="missing")
    assert error.value.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert [e for s, op, body in raw for e in _shape_errors(s, op, json.loads(body))] == []


def test_injected_faults_and_external_instance_addresses(local: Any) -> None:
    srv, c, raw = local
    c["ecs"].create_cluster(clusterName="ext")
    arns = c["ecs"].list_container_instances(cluster="ext")["containerInstanceArns"]
    ids = [i["ec2InstanceId"] for i in c["ecs"].describe_container_instances(cluster="ext", containerInstances=arns)["containerInstances"]]
    managed = [i for i in ids if i.startswith("mi-")]
    assert len(managed) == 1
    info = c["ssm"].describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": managed}])["InstanceInformationList"]
    assert info[0]["InstanceId"] == managed[0] and info[0]["IPAddress"].startswith("127.")
    srv.ecs.inject_faults(operation="ListTasks", error="AccessDeniedException")
    with pytest.raises(ClientError, match="AccessDeniedException"):
        c["ecs"].list_tasks(cluster="ext")
    srv.ecs.clear_faults()
    assert c["ecs"].list_tasks(cluster="ext")["taskArns"] == []
    assert [e for s, op, body in raw for e in _shape_errors(s, op, json.loads(body))] == []
