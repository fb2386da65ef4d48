"""Draining a replica that is going away: no new xDS streams, and the open ones closed one by one
over a drain period, so that proxies move to the other replicas a few at a time instead of all
reconnecting at once (a thundering herd that would also overflow grpc's pending-call queue)."""

from __future__ import annotations

import asyncio
import random
from typing import Callable

import structlog

log = structlog.get_logger()


class StreamDrain:
    """The open streams' close callbacks, and the drain that calls them spread over time."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._streams: dict[int, Callable[[], None]] = {}
        self._rng = rng or random.Random()
        self.draining = False
        self.closed = 0

    def __len__(self) -> int:
        return len(self._streams)

    def register(self, stream_id: int, close: Callable[[], None]) -> None:
        """A stream is open; `close` ends it (it must be cheap and may be called once)."""
        self._streams[stream_id] = close

    def unregister(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    async def drain(self, seconds: float) -> int:
        """Refuse new streams from now on and close the open ones, in random order, evenly over
        `seconds` (the first at once, the last at `seconds` x (n-1)/n). Returns how many it closed;
        streams that end on their own meanwhile are skipped."""
        self.draining = True
        order = list(self._streams)
        self._rng.shuffle(order)
        loop = asyncio.get_running_loop()
        started = loop.time()
        log.info("xds.drain_started", streams=len(order), seconds=seconds)
        for index, stream_id in enumerate(order):
            at = started + seconds * index / len(order)
            await asyncio.sleep(max(0.0, at - loop.time()))
            close = self._streams.pop(stream_id, None)
            if close is not None:
                close()
                self.closed += 1
        log.info("xds.drain_finished", closed=self.closed, seconds=round(loop.time() - started, 2))
        return self.closed
