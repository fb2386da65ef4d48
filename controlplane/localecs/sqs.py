"""A local SQS: standard queues with visibility timeouts, receipt handles and long polling.

Spoken through the JSON protocol botocore's current SQS model uses (``X-Amz-Target:
AmazonSQS.<Operation>``, ``application/x-amz-json-1.0``). Its own lock, never the ECS lock:
a long poll waits here for up to 20 s.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controlplane.localecs.errors import EcsError

TARGET_PREFIX = "AmazonSQS."
DEFAULT_VISIBILITY_TIMEOUT = 30
ACCOUNT = "000000000000"


class SqsError(EcsError):
    """An SQS error: JSON ``__type`` plus the query-compatible code botocore maps it to."""

    query_code = "InvalidParameterValue"
    fault = "Sender"

    @property
    def headers(self) -> dict[str, str]:
        return {"x-amzn-query-error": f"{self.query_code};{self.fault}"}


class QueueDoesNotExist(SqsError):
    code = "com.amazonaws.sqs#QueueDoesNotExist"
    query_code = "AWS.SimpleQueueService.NonExistentQueue"


class ReceiptHandleIsInvalid(SqsError):
    code = "com.amazonaws.sqs#ReceiptHandleIsInvalid"
    query_code = "ReceiptHandleIsInvalid"


class InvalidParameterValue(SqsError):
    code = "com.amazonaws.sqs#InvalidParameterValueException"
    query_code = "InvalidParameterValue"


class UnsupportedSqsOperation(SqsError):
    code = "com.amazonaws.sqs#UnsupportedOperation"
    query_code = "AWS.SimpleQueueService.UnsupportedOperation"


@dataclass
class Message:
    id: str
    body: str
    md5: str
    sent_at: float
    visible_at: float = 0.0
    receipt_handle: str | None = None
    receive_count: int = 0
    first_received_at: float | None = None


@dataclass
class Queue:
    name: str
    url: str
    arn: str
    attributes: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    @property
    def visibility_timeout(self) -> float:
        return float(self.attributes.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))


class LocalSqs:
    """Queues by name; thread-safe; ``send`` may be called from any thread."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.base_url = "http://127.0.0.1"
        self._queues: dict[str, Queue] = {}
        self._cond = threading.Condition()

    # -- queues -------------------------------------------------------------------------------

    def create_queue(self, name: str, attributes: dict[str, str] | None = None) -> Queue:
        if not name or len(name) > 80 or not all(ch.isalnum() or ch in "-_" for ch in name):
            raise InvalidParameterValue("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
        with self._cond:
            queue = self._queues.get(name)
            if queue is None:
                queue = Queue(
                    name=name,
                    url=f"{self.base_url}/{ACCOUNT}/{name}",
                    arn=f"arn:aws:sqs:{self.region}:{ACCOUNT}:{name}",
                    attributes=dict(attributes or {}),
                )
                self._queues[name] = queue
            return queue

    def queue(self, url_or_name: str) -> Queue:
        name = url_or_name.rstrip("/").rsplit("/", 1)[-1]
        with self._cond:
            queue = self._queues.get(name)
        if queue is None:
            raise QueueDoesNotExist("The specified queue does not exist.")
        return queue

    def queues(self) -> list[Queue]:
        with self._cond:
            return list(self._queues.values())

    def delete_queue(self, url: str) -> None:
        queue = self.queue(url)
        with self._cond:
            self._queues.pop(queue.name, None)
            self._cond.notify_all()

    # -- messages -----------------------------------------------------------------------------

    def send(self, queue: Queue, body: str) -> Message:
        message = Message(id=str(uuid.uuid4()), body=body, md5=hashlib.md5(body.encode()).hexdigest(), sent_at=time.time())
        with self._cond:
            queue.messages.append(message)
            self._cond.notify_all()
        return message

    def receive(self, queue: Queue, max_messages: int, wait_seconds: float, visibility_timeout: float | None, stop: threading.Event | None = None) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        with self._cond:
            while True:
                now = time.time()
                ready = [m for m in queue.messages if m.visible_at <= now][:max_messages]
                if ready or stop is not None and stop.is_set():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Wake for new messages, or when the soonest hidden message becomes visible.
                hidden = [m.visible_at - now for m in queue.messages if m.visible_at > now]
                self._cond.wait(min([remaining, 0.5] + hidden))
            timeout = queue.visibility_timeout if visibility_timeout is None else visibility_timeout
            for message in ready:
                message.receive_count += 1
                message.first_received_at = message.first_received_at or now
                message.visible_at = now + timeout
                message.receipt_handle = f"{message.id}#{secrets.token_hex(12)}"
            return list(ready)

    def delete(self, queue: Queue, receipt_handle: str) -> None:
        with self._cond:
            for index, message in enumerate(queue.messages):
                if message.receipt_handle == receipt_handle:
                    del queue.messages[index]
                    return
        # SQS accepts a handle whose message is already gone; a malformed one is an error.
        if "#" not in receipt_handle:
            raise ReceiptHandleIsInvalid(f"The input receipt handle \"{receipt_handle}\" is not a valid receipt handle.")

    def change_visibility(self, queue: Queue, receipt_handle: str, timeout: float) -> None:
        with self._cond:
            for message in queue.messages:
                if message.receipt_handle == receipt_handle:
                    message.visible_at = time.time() + timeout
                    self._cond.notify_all()
                    return
        raise ReceiptHandleIsInvalid("Message does not exist or is not available for visibility timeout change.")

    def purge(self, queue: Queue) -> None:
        with self._cond:
            queue.messages.clear()

    def stop_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()


# -- the JSON API -------------------------------------------------------------------------------

Params = dict[str, Any]


def _render(message: Message, attribute_names: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "MessageId": message.id,
        "ReceiptHandle": message.receipt_handle,
        "MD5OfBody": message.md5,
        "Body": message.body,
    }
    if attribute_names:
        attributes = {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "ApproximateFirstReceiveTimestamp": str(int((message.first_received_at or message.sent_at) * 1000)),
            "SenderId": "AIDALOCALECS",
        }
        wanted = set(attribute_names)
        result["Attributes"] = {k: v for k, v in attributes.items() if "All" in wanted or k in wanted}
    return result


def _queue_attributes(queue: Queue) -> dict[str, str]:
    now = time.time()
    visible = sum(1 for m in queue.messages if m.visible_at <= now)
    attributes = {
        "QueueArn": queue.arn,
        "ApproximateNumberOfMessages": str(visible),
        "ApproximateNumberOfMessagesNotVisible": str(len(queue.messages) - visible),
        "ApproximateNumberOfMessagesDelayed": "0",
        "CreatedTimestamp": str(int(queue.created_at)),
        "LastModifiedTimestamp": str(int(queue.created_at)),
        "VisibilityTimeout": str(int(queue.visibility_timeout)),
        "MaximumMessageSize": "262144",
        "MessageRetentionPeriod": "345600",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"),
    }
    attributes.update({k: v for k, v in queue.attributes.items() if k not in attributes})
    return attributes


def _int(params: Params, key: str, default: int, low: int, high: int) -> int:
    value = params.get(key, default)
    if not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterValue(f"Value {value} for parameter {key} is invalid. Must be between {low} and {high}.")
    return value


def handle(sqs: LocalSqs, target: str, params: Params, stop: threading.Event | None = None) -> dict[str, Any]:
    """Run the SQS operation named by ``X-Amz-Target``."""
    operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
    handler: Callable[[LocalSqs, Params], dict[str, Any]] | None = OPERATIONS.get(operation)
    if operation == "ReceiveMessage":
        return receive_message(sqs, params, stop)
    if handler is None:
        raise UnsupportedSqsOperation(f"Operation {target!r} is not supported by the local SQS.")
    return handler(sqs, params)


def create_queue(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    return {"QueueUrl": sqs.create_queue(str(params.get("QueueName", "")), params.get("Attributes")).url}


def get_queue_url(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    return {"QueueUrl": sqs.queue(str(params.get("QueueName", ""))).url}


def list_queues(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    prefix = str(params.get("QueueNamePrefix", ""))
    urls = [q.url for q in sqs.queues() if q.name.startswith(prefix)]
    return {"QueueUrls": urls} if urls else {}


def delete_queue(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    sqs.delete_queue(str(params.get("QueueUrl", "")))
    return {}


def get_queue_attributes(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    attributes = _queue_attributes(sqs.queue(str(params.get("QueueUrl", ""))))
    names = params.get("AttributeNames") or ["All"]
    return {"Attributes": attributes if "All" in names else {k: v for k, v in attributes.items() if k in names}}


def set_queue_attributes(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    queue = sqs.queue(str(params.get("QueueUrl", "")))
    queue.attributes.update({str(k): str(v) for k, v in (params.get("Attributes") or {}).items()})
    return {}


def send_message(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    queue = sqs.queue(str(params.get("QueueUrl", "")))
    body = params.get("MessageBody")
    if not isinstance(body, str) or not body:
        raise InvalidParameterValue("The request must contain the parameter MessageBody.")
    message = sqs.send(queue, body)
    return {"MessageId": message.id, "MD5OfMessageBody": message.md5}


def receive_message(sqs: LocalSqs, params: Params, stop: threading.Event | None = None) -> dict[str, Any]:
    queue = sqs.queue(str(params.get("QueueUrl", "")))
    max_messages = _int(params, "MaxNumberOfMessages", 1, 1, 10)
    default_wait = int(queue.attributes.get("ReceiveMessageWaitTimeSeconds", "0"))
    wait = _int(params, "WaitTimeSeconds", default_wait, 0, 20)
    visibility = params.get("VisibilityTimeout")
    if visibility is not None:
        visibility = _int(params, "VisibilityTimeout", 30, 0, 43200)
    names = list(params.get("MessageSystemAttributeNames") or []) + list(params.get("AttributeNames") or [])
    messages = sqs.receive(queue, max_messages, wait, visibility, stop)
    return {"Messages": [_render(m, names) for m in messages]} if messages else {}


def delete_message(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    sqs.delete(sqs.queue(str(params.get("QueueUrl", ""))), str(params.get("ReceiptHandle", "")))
    return {}


def delete_message_batch(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    queue = sqs.queue(str(params.get("QueueUrl", "")))
    entries = params.get("Entries") or []
    if not 1 <= len(entries) <= 10:
        raise InvalidParameterValue("There should be between 1 and 10 entries in the batch.")
    successful, failed = [], []
    for entry in entries:
        try:
            sqs.delete(queue, str(entry.get("ReceiptHandle", "")))
        except SqsError as exc:
            failed.append({"Id": entry.get("Id", ""), "SenderFault": True, "Code": exc.query_code, "Message": exc.message})
        else:
            successful.append({"Id": entry.get("Id", "")})
    return {"Successful": successful, "Failed": failed}


def change_message_visibility(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    queue = sqs.queue(str(params.get("QueueUrl", "")))
    sqs.change_visibility(queue, str(params.get("ReceiptHandle", "")), _int(params, "VisibilityTimeout", 30, 0, 43200))
    return {}


def purge_queue(sqs: LocalSqs, params: Params) -> dict[str, Any]:
    sqs.purge(sqs.queue(str(params.get("QueueUrl", ""))))
    return {}


OPERATIONS: dict[str, Callable[[LocalSqs, Params], dict[str, Any]]] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "ListQueues": list_queues,
    "DeleteQueue": delete_queue,
    "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes,
    "SendMessage": send_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "PurgeQueue": purge_queue,
}
