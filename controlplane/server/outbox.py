"""What one xDS stream has to write, and what wakes its writer: responses to the proxy's requests
(made by the stream's reader as each request arrives), a change of the role's snapshot, the end of
a NACK backoff, the end of the stream. No queue and no task per push: a push costs one wake-up of
the writer, an ACK none."""

from __future__ import annotations

import asyncio
import time


class Outbox:
    """Encoded responses in the order the state machine made them (so nonces go out in order); a
    change, or a backoff's end, is remembered at most once until the writer takes it, so that a
    stream that is behind handles the latest snapshot once, not every intermediate one."""

    def __init__(self) -> None:
        self._payloads: list[bytes] = []
        self._changed = False
        self._retry_due = False
        self.ended = False
        self._waiter: asyncio.Future[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_at: float | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> bool:
        """Whether responses wait to be written."""
        return bool(self._payloads)

    def send(self, payloads: list[bytes]) -> None:
        if payloads:
            self._payloads.extend(payloads)
            self._wake()

    def changed(self) -> None:
        """The role's snapshot changed (the cache's callback)."""
        if not self._changed:
            self._changed = True
            self._wake()

    def end(self) -> None:
        """The stream ends: the proxy closed its side, reading failed, or the replica drains."""
        self.ended = True
        self._wake()

    def retry_at(self, at: float | None) -> None:
        """Wake the writer at wall-clock time `at` to offer NACKed resources again (None: nothing to retry)."""
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
        self._retry_due = True
        self._wake()

    async def wait(self) -> None:
        """Until there is something to write, a push to make, or the stream ended."""
        while not (self._payloads or self._changed or self._retry_due or self.ended):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def take_push(self) -> bool:
        """Whether the snapshot changed or a backoff ended since the writer last looked (then forgotten)."""
        due = self._changed or self._retry_due
        self._changed = self._retry_due = False
        return due

    def take(self) -> list[bytes]:
        payloads, self._payloads = self._payloads, []
        return payloads

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
