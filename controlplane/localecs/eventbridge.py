"""The ECS event stream: every task state change becomes an EventBridge "ECS Task State Change"
event, delivered to the targets routed to receive it, as an EventBridge rule's targets would:
SQS queues (the event is the message body) and SNS topics (which fan it out to their queues,
see sns.py), optionally with duplicates and reordering as EventBridge may deliver them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from controlplane.localecs.sns import LocalSns, Topic
from controlplane.localecs.sqs import LocalSqs, Queue


def iso(timestamp: float) -> str:
    """An event detail timestamp as ECS writes it: milliseconds, trailing zeros dropped.

    ``2024-11-13T20:56:36.54Z``, ``2024-11-13T21:23:11.984Z``, ``2024-11-13T21:23:11Z``.
    """
    # Rounded to milliseconds as DescribeTasks' numbers are (wire.java_double): ECS renders one
    # instant the same way in both, so a task's event and its describe agree on every timestamp.
    whole, _, fraction = f"{round(timestamp, 3):.3f}".partition(".")
    text = datetime.fromtimestamp(int(whole), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    digits = fraction.rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def event_time(timestamp: float) -> str:
    """The envelope's ``time``: whole seconds, ``2024-11-13T21:23:11Z``."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _isoify(value: Any) -> Any:
    """DescribeTasks timestamps are epoch seconds on the wire; in events they are ISO strings."""
    if isinstance(value, dict):
        return {k: iso(v) if k.endswith("At") and isinstance(v, (int, float)) else _isoify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_isoify(v) for v in value]
    return value


# DescribeTasks says "ElasticNetworkInterface"; the event says "eni" (AWS's example events).
_EVENT_ATTACHMENT_TYPES = {"ElasticNetworkInterface": "eni"}


def task_state_change(rendered_task: dict[str, Any], region: str, account: str, updated_at: float) -> dict[str, Any]:
    """The EventBridge "ECS Task State Change" event for a task as DescribeTasks renders it.

    As ECS sends it: no ``healthStatus`` at task or container level (health is only in
    DescribeTasks), no ``tags``, ISO timestamps, attachment type ``eni``, and ``updatedAt``.
    """
    detail = _isoify({k: v for k, v in rendered_task.items() if k not in ("healthStatus", "tags")})
    detail["containers"] = [{k: v for k, v in c.items() if k != "healthStatus"} for c in detail.get("containers", [])]
    detail["attachments"] = [
        {**a, "type": _EVENT_ATTACHMENT_TYPES.get(a.get("type", ""), a.get("type"))} for a in detail.get("attachments", [])
    ]
    detail["updatedAt"] = iso(updated_at)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": event_time(updated_at),
        "region": region,
        "resources": [rendered_task["taskArn"]],
        "detail": detail,
    }


@dataclass
class Route:
    """Events to one target (a queue or a topic), with EventBridge's at-least-once, unordered
    delivery modelled."""

    target: Queue | Topic
    deliver: Callable[[str], object]
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0


class EventStream:
    """Routes events to queues and topics. ``emit`` is called under the ECS lock: it only enqueues."""

    def __init__(self, sqs: LocalSqs, seed: int | None = None, sns: LocalSns | None = None) -> None:
        self._sqs = sqs
        self._sns = sns or LocalSns(sqs)
        self._routes: list[Route] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # A held-back event per route, sent after the next one (reordering) or by flush().
        self._held: dict[int, tuple[str, float]] = {}
        self.emitted = 0

    @property
    def active(self) -> bool:
        return bool(self._routes)

    def route(self, target: Queue | Topic, *, duplicate_rate: float = 0.0, reorder_rate: float = 0.0) -> Route:
        """Deliver every event to `target`: a queue receives the event as its message body, a
        topic publishes it to its subscriptions (EventBridge rule -> SNS target)."""
        with self._lock:
            for route in self._routes:
                if route.target is target:
                    route.duplicate_rate, route.reorder_rate = duplicate_rate, reorder_rate
                    return route
            if isinstance(target, Queue):
                queue = target
                deliver: Callable[[str], object] = lambda body: self._sqs.send(queue, body)  # noqa: E731
            else:
                topic = target
                deliver = lambda body: self._sns.publish(topic.arn, body)  # noqa: E731
            route = Route(target, deliver, duplicate_rate, reorder_rate)
            self._routes.append(route)
            return route

    def unroute(self, target: Queue | Topic) -> None:
        with self._lock:
            self._routes = [r for r in self._routes if r.target is not target]

    def emit(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":"))
        with self._lock:
            self.emitted += 1
            for index, route in enumerate(self._routes):
                held = self._held.pop(id(route), None)
                if held is None and route.reorder_rate and self._random.random() < route.reorder_rate:
                    self._held[id(route)] = (body, time.monotonic())  # goes out after the next event
                    continue
                route.deliver(body)
                if held is not None:
                    route.deliver(held[0])
                if route.duplicate_rate and self._random.random() < route.duplicate_rate:
                    route.deliver(body)

    def flush(self, older_than: float = 0.0) -> None:
        """Send held-back events that waited ``older_than`` seconds for a successor."""
        now = time.monotonic()
        with self._lock:
            for route in self._routes:
                held = self._held.get(id(route))
                if held is not None and now - held[1] >= older_than:
                    del self._held[id(route)]
                    route.deliver(held[0])
