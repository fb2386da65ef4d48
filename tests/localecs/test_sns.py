"""The local SNS: topics fan every ECS event out to several SQS queues (one per control-plane
replica), with SNS's envelope as AWS delivers it when raw message delivery is off; spoken through
boto3's sns client (query protocol), errors as SNS's codes."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from controlplane.discovery.sqs_events import TaskChange, parse_message
from controlplane.localecs import LocalEcsServer

# The keys of an SNS notification delivered to SQS, in the order AWS writes them (Amazon SNS
# developer guide, "Fanout to Amazon SQS queues"; no Subject when none was published).
ENVELOPE_KEYS = ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL"]


@pytest.fixture
def local(tmp_path: Any) -> Any:
    srv = LocalEcsServer(
        provisioning_seconds=0.02, pending_seconds=0.02, processes=False, log_dir=str(tmp_path),
        event_topics={"ecs-events": ["replica-a", "replica-b"]}, seed=1,
    ).start()
    clients = {
        service: boto3.client(service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        for service in ("ecs", "sqs", "sns")
    }
    try:
        yield srv, clients
    finally:
        srv.close()


def _drain(sqs: Any, queue: str, until: Any, timeout: float = 5.0) -> list[str]:
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(bodies):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_every_queue_gets_every_ecs_event_in_an_sns_envelope(local: Any) -> None:
    srv, c = local
    c["ecs"].create_cluster(clusterName="fan")
    td = c["ecs"].register_task_definition(
        family="f", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        containerDefinitions=[{"name": "app", "image": "x", "portMappings": [{"containerPort": 80}]}],
    )["taskDefinition"]["taskDefinitionArn"]
    task_arn = c["ecs"].run_task(cluster="fan", taskDefinition=td, launchType="FARGATE")["tasks"][0]["taskArn"]

    def running(bodies: list[str]) -> bool:
        return any(json.loads(json.loads(b)["Message"])["detail"]["lastStatus"] == "RUNNING" for b in bodies)

    copies = {queue: _drain(c["sqs"], queue, running) for queue in ("replica-a", "replica-b")}
    assert all(running(bodies) for bodies in copies.values())
    topic_arn = c["sns"].list_topics()["Topics"][0]["TopicArn"]
    for bodies in copies.values():
        for body in bodies:
            envelope = json.loads(body)
            assert list(envelope) == ENVELOPE_KEYS
            assert body.startswith('{\n  "Type" : "Notification",\n  "MessageId" : ')  # SNS's own layout
            assert envelope["TopicArn"] == topic_arn and envelope["SignatureVersion"] == "1"
            assert envelope["UnsubscribeURL"].startswith(srv.url)  # loopback, like the queue URLs
            event = json.loads(envelope["Message"])
            assert event["source"] == "aws.ecs" and event["detail-type"] == "ECS Task State Change"
            # The product reads the wrapped event exactly as it reads one EventBridge put in the queue.
            parsed = parse_message(body)
            assert isinstance(parsed, TaskChange) and parsed.task_arn == task_arn and parsed.cluster == "fan"
            assert parsed.detail == event["detail"]
    # One publish per event: both replicas see the same events, each with the same MessageId.
    ids = [sorted(json.loads(b)["MessageId"] for b in bodies) for bodies in copies.values()]
    assert ids[0] == ids[1]


def test_subscribe_publish_and_raw_delivery_through_boto3(local: Any) -> None:
    _, c = local
    topic = c["sns"].create_topic(Name="t")["TopicArn"]
    assert c["sns"].create_topic(Name="t")["TopicArn"] == topic  # idempotent, as in AWS
    arns = {}
    for name in ("wrapped", "raw"):
        url = c["sqs"].create_queue(QueueName=name)["QueueUrl"]
        queue_arn = c["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        arns[name] = c["sns"].subscribe(
            TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True,
            Attributes={"RawMessageDelivery": "true"} if name == "raw" else {},
        )["SubscriptionArn"]
    assert c["sns"].get_subscription_attributes(SubscriptionArn=arns["raw"])["Attributes"]["RawMessageDelivery"] == "true"
    assert c["sns"].get_subscription_attributes(SubscriptionArn=arns["wrapped"])["Attributes"]["RawMessageDelivery"] == "false"
    listed = c["sns"].list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert sorted(s["SubscriptionArn"] for s in listed) == sorted(arns.values()) and {s["Protocol"] for s in listed} == {"sqs"}

    message_id = c["sns"].publish(TopicArn=topic, Message='{"hello": 1}', Subject="greeting")["MessageId"]
    (wrapped,) = _drain(c["sqs"], "wrapped", lambda b: b)
    (raw,) = _drain(c["sqs"], "raw", lambda b: b)
    assert raw == '{"hello": 1}'
    envelope = json.loads(wrapped)
    assert envelope["MessageId"] == message_id and envelope["Subject"] == "greeting" and envelope["Message"] == raw
    assert list(envelope)[:4] == ["Type", "MessageId", "TopicArn", "Subject"]

    # Unsubscribed queues receive nothing more; raw delivery can be switched off later.
    c["sns"].unsubscribe(SubscriptionArn=arns["raw"])
    c["sns"].publish(TopicArn=topic, Message="again")
    assert _drain(c["sqs"], "raw", lambda b: b, timeout=1.5) == []
    assert json.loads(_drain(c["sqs"], "wrapped", lambda b: b)[0])["Message"] == "again"


def test_errors_are_sns_error_codes(local: Any) -> None:
    _, c = local
    with pytest.raises(ClientError) as missing:
        c["sns"].publish(TopicArn="arn:aws:sns:us-east-1:000000000000:nope", Message="x")
    assert missing.value.response["Error"]["Code"] == "NotFound"
    topic = c["sns"].create_topic(Name="t")["TopicArn"]
    with pytest.raises(ClientError) as no_queue:
        c["sns"].subscribe(TopicArn=topic, Protocol="sqs", Endpoint="arn:aws:sqs:us-east-1:000000000000:nope")
    assert no_queue.value.response["Error"]["Code"] == "InvalidParameter" and "no such queue" in no_queue.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as protocol:
        c["sns"].subscribe(TopicArn=topic, Protocol="https", Endpoint="https://example.invalid/")
    assert protocol.value.response["Error"]["Code"] == "InvalidParameter"
