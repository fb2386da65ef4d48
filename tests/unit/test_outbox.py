"""What wakes a stream's writer (server/outbox.py)."""

from __future__ import annotations

import asyncio
import time

from controlplane.server.outbox import Outbox


def test_changes_while_the_writer_is_busy_make_one_push_and_responses_keep_their_order() -> None:
    async def scenario() -> None:
        outbox = Outbox()
        outbox.send([b"1"])
        outbox.changed()
        outbox.changed()
        outbox.send([b"2"])
        await asyncio.wait_for(outbox.wait(), 1)
        assert outbox.take_push() and not outbox.take_push()
        assert outbox.take() == [b"1", b"2"] and not outbox.pending

    asyncio.run(scenario())


def test_the_writer_sleeps_until_woken_and_a_backoff_end_wakes_it() -> None:
    async def scenario() -> None:
        outbox = Outbox()
        waiting = asyncio.ensure_future(outbox.wait())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        outbox.retry_at(time.time() + 0.05)
        await asyncio.wait_for(waiting, 1)
        assert outbox.take_push() and not outbox.ended
        waiting = asyncio.ensure_future(outbox.wait())
        outbox.end()
        await asyncio.wait_for(waiting, 1)
        assert outbox.ended
        outbox.close()

    asyncio.run(scenario())
