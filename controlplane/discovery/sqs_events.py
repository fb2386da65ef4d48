"""ECS events from EventBridge, read from an SQS queue: classifying message bodies, and the
long-polling receiver.

EventBridge delivers each event as the message body (or wrapped in an SNS notification when the
queue is subscribed to a topic). Only "ECS Task State Change" events name tasks; other ECS events
(service actions, deployments, container instances) are counted by type and deleted, because
every task they touch produces its own task event. A body that is not a usable ECS event is
logged, counted and left in the queue, so that SQS's redrive policy moves it to the dead-letter
queue after a few receives, where it can be read.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import structlog

log = structlog.get_logger()

TASK_STATE_CHANGE = "ECS Task State Change"
# ECS's other EventBridge detail types: counted by name; anything else counts as "other".
KNOWN_ECS_DETAIL_TYPES = frozenset(
    {
        "ECS Service Action",
        "ECS Deployment State Change",
        "ECS Container Instance State Change",
        "ECS Service Deployment State Change",
    }
)
DELETE_BATCH = 10
# A message received this many times without being applied or redriven (no dead-letter queue on
# the queue?) is deleted, so that one bad body cannot come back forever.
MAX_RECEIVES = 10


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received SQS message: what it said, the handle that deletes it, how often it came."""

    receipt_handle: str
    body: str
    message_id: str = ""
    receive_count: int = 1


@dataclass(frozen=True, slots=True)
class TaskChange:
    """A task state change: its cluster (name) and the task detail as DescribeTasks shows it."""

    cluster: str
    task_arn: str
    detail: Mapping[str, Any] = field(repr=False)

    @property
    def version(self) -> int | None:
        version = self.detail.get("version")
        return int(version) if isinstance(version, int) and not isinstance(version, bool) else None


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """An ECS event we do not act on; `detail_type` is a known ECS type or "other"."""

    detail_type: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A body that is not a usable ECS event, and why."""

    reason: str


Parsed = TaskChange | OtherEvent | Unreadable


def cluster_name(ref: str) -> str:
    """`prod` from `prod` or from `arn:aws:ecs:region:account:cluster/prod`."""
    return ref.rsplit("cluster/", 1)[-1] if ref.startswith("arn:") else ref


_LIST_FIELDS = ("containers", "attachments")
_TEXT_FIELDS = ("taskArn", "clusterArn", "taskDefinitionArn", "lastStatus", "desiredStatus", "group")


def _detail_problem(detail: Mapping[str, Any]) -> str | None:
    """Why a task detail cannot be applied, checked for every field discovery reads."""
    for name in ("taskArn", "clusterArn"):
        if not isinstance(detail.get(name), str) or not detail[name]:
            return f"detail.{name} missing or not a string"
    for name in _TEXT_FIELDS:
        if name in detail and not isinstance(detail[name], str):
            return f"detail.{name} is not a string"
    version = detail.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        return "detail.version is not an integer"
    for name in _LIST_FIELDS:
        value = detail.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            return f"detail.{name} is not a list of objects"
    for container in detail.get("containers", ()):
        if not isinstance(container.get("networkBindings", []), list) or not isinstance(container.get("name", ""), str):
            return "detail.containers[] has a malformed name or networkBindings"
    return None


def parse_message(body: str) -> Parsed:
    """What an SQS message body carries."""
    try:
        event = json.loads(body)
    except ValueError:
        return Unreadable("not JSON")
    if isinstance(event, dict) and event.get("Type") == "Notification" and isinstance(event.get("Message"), str):
        try:
            event = json.loads(event["Message"])  # SNS fan-out in between
        except ValueError:
            return Unreadable("SNS notification whose Message is not JSON")
    if not isinstance(event, dict) or event.get("source") != "aws.ecs":
        return Unreadable("not an ECS event (source is not aws.ecs)")
    detail_type = event.get("detail-type")
    if detail_type != TASK_STATE_CHANGE:
        return OtherEvent(detail_type if detail_type in KNOWN_ECS_DETAIL_TYPES else "other")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Unreadable("task state change without a detail object")
    problem = _detail_problem(detail)
    if problem is not None:
        return Unreadable(problem)
    return TaskChange(cluster=cluster_name(str(detail["clusterArn"])), task_arn=str(detail["taskArn"]), detail=detail)


class SqsEventSource:
    """Long-polls one SQS queue in a daemon thread and hands messages to the event loop.

    A daemon thread (not the default executor) so that a receive blocked in a 20 s long poll
    never holds up shutdown. Receive errors are logged and retried with backoff; `failing` tells
    discovery to fall back to polling until the queue answers again.
    """

    def __init__(self, sqs: Any, queue_url: str, *, wait_seconds: int = 20, visibility_timeout: int | None = None) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self._wait_seconds = max(0, min(20, wait_seconds))
        self._visibility_timeout = visibility_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consecutive_failures = 0
        self.last_error: str | None = None

    @property
    def failing(self) -> bool:
        return self.consecutive_failures > 0

    def start(self, deliver: Callable[[list[QueueMessage]], None]) -> None:
        """Start receiving; `deliver` is called from the receiver thread with each batch."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(deliver,), name="sqs-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self, deliver: Callable[[list[QueueMessage]], None]) -> None:
        while not self._stop.is_set():
            try:
                messages = self.receive()
            except Exception as error:  # noqa: BLE001 - the queue may be down; resync covers it
                self.consecutive_failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                delay = min(30.0, 0.5 * 2 ** min(self.consecutive_failures, 6))
                log.warning(
                    "discovery.events_receive_failed",
                    error=self.last_error,
                    consecutive_failures=self.consecutive_failures,
                    retry_in_seconds=delay,
                )
                self._stop.wait(delay)
                continue
            if self.consecutive_failures:
                log.info("discovery.events_receive_recovered", after_failures=self.consecutive_failures)
            self.consecutive_failures = 0
            self.last_error = None
            if messages and not self._stop.is_set():
                try:
                    deliver(messages)
                except RuntimeError:  # the event loop is closed: we are shutting down
                    return

    def receive(self) -> list[QueueMessage]:
        """One long poll (blocking)."""
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": self._wait_seconds,
            "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
        }
        if self._visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = self._visibility_timeout
        response = self._sqs.receive_message(**kwargs)
        messages = [
            QueueMessage(
                str(m["ReceiptHandle"]),
                str(m.get("Body", "")),
                str(m.get("MessageId", "")),
                _receive_count(m.get("Attributes") or {}),
            )
            for m in response.get("Messages", ())
        ]
        return messages

    def delete(self, messages: Sequence[QueueMessage]) -> int:
        """Delete messages (blocking, 10 per call); returns the number of calls made.

        A failed delete only means the message comes back after its visibility timeout, and a
        duplicate is harmless, so failures are logged, never raised."""
        calls = 0
        for start in range(0, len(messages), DELETE_BATCH):
            batch = messages[start : start + DELETE_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(batch)]
            calls += 1
            try:
                response = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as error:  # noqa: BLE001
                log.warning("discovery.events_delete_failed", error=f"{type(error).__name__}: {error}", messages=len(batch))
                continue
            if response.get("Failed"):
                log.warning("discovery.events_delete_partly_failed", failed=len(response["Failed"]))
        return calls


def _receive_count(attributes: Mapping[str, Any]) -> int:
    try:
        return max(1, int(attributes.get("ApproximateReceiveCount", 1)))
    except (TypeError, ValueError):
        return 1
