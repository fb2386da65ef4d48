"""An in-process bus of things that happened (pushes, ACKs, NACKs, discovery changes), for the
admin API's WatchEvents and for tests. Slow subscribers lose their oldest events, never block."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # mesh_updated, push, ack, nack, nack_resend, proxy_connected, proxy_disconnected, sync_failed
    node_id: str = ""
    type: str = ""
    version: str = ""
    message: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class EventBus:
    """Fan-out of events to any number of subscribers, each with a bounded queue."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Event]] = set()

    def publish(self, event: Event) -> None:
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()  # drop the oldest: a slow watcher must not stall the server
            queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
