"""Reading the local ECS's EventBridge events from its SQS queue in tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


class EventReader:
    """Every event delivered so far to one queue, in delivery order (messages deleted once read)."""

    def __init__(self, sqs: Any, queue: str) -> None:
        self._sqs = sqs
        self._url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        self.events: list[dict[str, Any]] = []

    def read(self, wait_seconds: int = 0) -> list[dict[str, Any]]:
        """Receive what is queued now (long-polling up to ``wait_seconds``); return the new events."""
        new: list[dict[str, Any]] = []
        while True:
            response = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds)
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                new.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=message["ReceiptHandle"])
            wait_seconds = 0
        self.events += new
        return new

    def until(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15.0) -> list[dict[str, Any]]:
        """Read until ``predicate(all events so far)`` holds; return all events."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            if time.monotonic() > deadline:
                states = [(e["detail"]["lastStatus"], e["detail"]["desiredStatus"]) for e in self.events]
                raise AssertionError(f"timed out after {timeout}s; events so far: {states}")
            self.read(wait_seconds=1)
        return self.events

    def for_task(self, task_arn: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["detail"]["taskArn"] == task_arn]


def states(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(lastStatus, desiredStatus) of each event, consecutive duplicates (EventBridge redelivery) dropped."""
    result: list[tuple[str, str]] = []
    for event in events:
        state = (event["detail"]["lastStatus"], event["detail"]["desiredStatus"])
        if not result or result[-1] != state:
            result.append(state)
    return result


def stopped(task_arn: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["detail"]["taskArn"] == task_arn and e["detail"]["lastStatus"] == "STOPPED" for e in events)
