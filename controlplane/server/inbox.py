"""What wakes one xDS stream: the proxy's requests, a change of its role's snapshot, the end of a
NACK backoff. One queue, so that handling a request costs no task or future of its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

CHANGED = object()  # the role's snapshot changed
RETRY = object()  # a NACK backoff is over


class Inbox:
    """Requests in arrival order; a change, or a backoff's end, queued at most once until handled,
    so that a stream that is behind handles the latest state once, not every intermediate one."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._change_queued = False
        self._retry: asyncio.TimerHandle | None = None
        self._retry_at: float | None = None

    def request(self, request: Any) -> None:
        self._queue.put_nowait(request)

    def closed(self) -> None:
        """The proxy's side of the stream ended (None comes out of `next`)."""
        self._queue.put_nowait(None)

    def changed(self) -> None:
        if not self._change_queued:
            self._change_queued = True
            self._queue.put_nowait(CHANGED)

    def retry_at(self, at: float | None) -> None:
        """Queue RETRY at wall-clock time `at` (None: nothing to retry)."""
        if at == self._retry_at:
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._retry_at = at
        if at is not None:
            loop = asyncio.get_running_loop()
            # A millisecond late rather than early: the stream compares against the wall clock.
            self._retry = loop.call_at(loop.time() + max(0.0, at - time.time()) + 0.001, self._fire_retry)

    def _fire_retry(self) -> None:
        self._retry, self._retry_at = None, None
        self._queue.put_nowait(RETRY)

    async def next(self) -> Any:
        item = await self._queue.get()
        if item is CHANGED:
            self._change_queued = False
        return item

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
