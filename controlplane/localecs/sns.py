"""A local SNS: standard topics fanning out to SQS queues, as AWS delivers them.

The fan-out the product's replicas run on in AWS (EventBridge -> SNS topic -> one SQS queue per
replica): every message published to a topic goes to every subscribed queue. With
``RawMessageDelivery`` off (AWS's default) the queue receives SNS's JSON notification envelope
(``Type``, ``MessageId``, ``TopicArn``, ``Message``, ``Timestamp``, ``SignatureVersion``,
``Signature``, ``SigningCertURL``, ``UnsubscribeURL``, in that order, pretty-printed as SNS does);
with it on, the message itself. Thread-safe; ``publish`` may be called under the ECS lock (it
only enqueues).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from controlplane.localecs.errors import EcsError
from controlplane.localecs.sqs import ACCOUNT, LocalSqs, Queue

RAW_MESSAGE_DELIVERY = "RawMessageDelivery"
SUBSCRIPTION_ATTRIBUTES = frozenset({RAW_MESSAGE_DELIVERY, "FilterPolicy", "FilterPolicyScope", "RedrivePolicy"})


class SnsError(EcsError):
    """An SNS error (query protocol: ``<ErrorResponse><Error><Code>``)."""

    fault = "Sender"


class NotFound(SnsError):
    code = "NotFound"
    status = 404


class InvalidParameter(SnsError):
    code = "InvalidParameter"


@dataclass
class Subscription:
    arn: str
    topic_arn: str
    queue: Queue
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> bool:
        return self.attributes.get(RAW_MESSAGE_DELIVERY, "false").lower() == "true"


@dataclass
class Topic:
    name: str
    arn: str
    subscriptions: list[Subscription] = field(default_factory=list)


def notification(
    message: str, *, message_id: str, topic_arn: str, subscription_arn: str, published_at: float, base_url: str, subject: str | None = None
) -> str:
    """The SQS message body SNS delivers to a queue subscribed without raw message delivery."""
    body: dict[str, str] = {"Type": "Notification", "MessageId": message_id, "TopicArn": topic_arn}
    if subject is not None:
        body["Subject"] = subject
    stamp = datetime.fromtimestamp(published_at, tz=timezone.utc)
    body.update(
        {
            "Message": message,
            "Timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "SignatureVersion": "1",
            # The shape of a SHA1withRSA signature (256 bytes, base64); nothing here can verify it.
            "Signature": base64.b64encode(hashlib.sha512(f"{message_id}{message}".encode()).digest() * 4).decode(),
            # Loopback, like the local queue URLs: nothing a test runs may be pointed elsewhere.
            "SigningCertURL": f"{base_url}/SimpleNotificationService-{hashlib.md5(topic_arn.encode()).hexdigest()}.pem",
            "UnsubscribeURL": f"{base_url}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
        }
    )
    return json.dumps(body, indent=2, separators=(",", " : "))


class LocalSns:
    """Topics by name; ``publish`` copies a message into every subscribed queue."""

    def __init__(self, sqs: LocalSqs, region: str = "us-east-1") -> None:
        self._sqs = sqs
        self.region = region
        self._topics: dict[str, Topic] = {}
        self._lock = threading.Lock()
        self.published = 0

    def _arn(self, name: str) -> str:
        return f"arn:aws:sns:{self.region}:{ACCOUNT}:{name}"

    def create_topic(self, name: str) -> Topic:
        """Create `name` (idempotent, as in AWS)."""
        if not name or len(name) > 256 or not all(ch.isalnum() or ch in "-_" for ch in name) or name.endswith(".fifo"):
            raise InvalidParameter("Invalid parameter: Topic Name (standard topics: 1-256 letters, digits, - and _)")
        with self._lock:
            topic = self._topics.get(name)
            if topic is None:
                topic = self._topics[name] = Topic(name, self._arn(name))
            return topic

    def topic(self, arn_or_name: str) -> Topic:
        name = arn_or_name.rsplit(":", 1)[-1]
        with self._lock:
            topic = self._topics.get(name)
        if topic is None or (arn_or_name.startswith("arn:") and topic.arn != arn_or_name):
            raise NotFound("Topic does not exist")
        return topic

    def topics(self) -> list[Topic]:
        with self._lock:
            return list(self._topics.values())

    def delete_topic(self, arn: str) -> None:
        with self._lock:
            self._topics = {n: t for n, t in self._topics.items() if t.arn != arn}

    def subscribe(self, topic_arn: str, protocol: str, endpoint: str, attributes: dict[str, str] | None = None) -> Subscription:
        """Subscribe an SQS queue (by ARN) to a topic; subscribing it again returns the same subscription."""
        topic = self.topic(topic_arn)
        if protocol != "sqs":
            raise InvalidParameter(f"Invalid parameter: Protocol {protocol!r}: the local SNS delivers to SQS queues only")
        try:
            queue = self._sqs.queue(endpoint.rsplit(":", 1)[-1])
        except EcsError:
            raise InvalidParameter(f"Invalid parameter: SQS endpoint ARN {endpoint!r}: no such queue") from None
        if queue.arn != endpoint:
            raise InvalidParameter(f"Invalid parameter: SQS endpoint ARN {endpoint!r}")
        unknown = set(attributes or {}) - SUBSCRIPTION_ATTRIBUTES
        if unknown:
            raise InvalidParameter(f"Invalid parameter: Attributes Reason: Unknown attribute {sorted(unknown)[0]}")
        with self._lock:
            for subscription in topic.subscriptions:
                if subscription.queue is queue:
                    return subscription
            subscription = Subscription(f"{topic.arn}:{uuid.uuid4()}", topic.arn, queue, dict(attributes or {}))
            topic.subscriptions.append(subscription)
            return subscription

    def subscription(self, arn: str) -> Subscription:
        with self._lock:
            for topic in self._topics.values():
                for subscription in topic.subscriptions:
                    if subscription.arn == arn:
                        return subscription
        raise NotFound("Subscription does not exist")

    def set_subscription_attribute(self, arn: str, name: str, value: str) -> None:
        if name not in SUBSCRIPTION_ATTRIBUTES:
            raise InvalidParameter(f"Invalid parameter: AttributeName {name!r}")
        subscription = self.subscription(arn)
        with self._lock:
            subscription.attributes[name] = value

    def unsubscribe(self, arn: str) -> None:
        with self._lock:
            for topic in self._topics.values():
                topic.subscriptions = [s for s in topic.subscriptions if s.arn != arn]

    def publish(self, topic_arn: str, message: str, subject: str | None = None) -> str:
        """Deliver `message` to every subscribed queue; returns the MessageId (the same in every copy)."""
        topic = self.topic(topic_arn)
        if not message:
            raise InvalidParameter("Invalid parameter: Empty message")
        message_id = str(uuid.uuid4())
        now = time.time()
        with self._lock:
            subscriptions = list(topic.subscriptions)
            self.published += 1
        for subscription in subscriptions:
            body = message if subscription.raw else notification(
                message,
                message_id=message_id,
                topic_arn=topic.arn,
                subscription_arn=subscription.arn,
                published_at=now,
                base_url=self._sqs.base_url,
                subject=subject,
            )
            self._sqs.send(subscription.queue, body)
        return message_id
