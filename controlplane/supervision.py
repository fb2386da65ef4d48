"""Keeps the pipeline serving through its own failures: every exception in the discovery loop, a
mesh build or a publish is logged (`pipeline.failed`), counted, shown by the admin API, and the
last good config keeps being served; health follows the age of that config."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import structlog

from controlplane.admin.event_bus import Event, EventBus
from controlplane.admin.metrics import Metrics
from controlplane.admin.readiness import Readiness

log = structlog.get_logger()


@dataclass(frozen=True)
class Backoff:
    """Seconds before restarting a failed loop: `first`, doubling up to `max`; back to `first`
    once a run lasted `max` seconds (it was working)."""

    first: float = 1.0
    max: float = 30.0


class Supervisor:
    """Records pipeline failures and recoveries, restarts loops that raise, and drives health."""

    def __init__(self, readiness: Readiness, metrics: Metrics, events: EventBus, backoff: Backoff = Backoff()) -> None:
        self.readiness = readiness
        self._metrics = metrics
        self._events = events
        self._backoff = backoff
        metrics.track_readiness(lambda: readiness.degraded, readiness.ready, readiness.config_age_seconds)

    def failed(self, stage: str, error: BaseException, **context: object) -> None:
        failure = self.readiness.failed(stage, error)
        self._metrics.pipeline_failures.labels(stage=stage).inc()
        # The traceback goes to the log: an exception here is a bug or a poison input to find.
        log.error(
            "pipeline.failed",
            stage=stage,
            error=failure.error,
            consecutive_failures=failure.consecutive,
            serving="the last good config",
            exc_info=error,
            **context,
        )
        self._events.publish(Event(kind="pipeline_failed", message=failure.error, details={"stage": stage}))

    def succeeded(self, *stages: str) -> None:
        for failure in self.readiness.succeeded(*stages):
            log.info("pipeline.recovered", stage=failure.stage, failed_for_seconds=round(time.time() - failure.since, 3), failures=failure.consecutive)
            self._events.publish(Event(kind="pipeline_recovered", message=failure.error, details={"stage": failure.stage}))

    async def keep_running(self, stage: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run `run` until cancelled, restarting it (with backoff) whenever it raises."""
        delay = self._backoff.first
        while True:
            started = time.monotonic()
            try:
                await run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the point: nothing stops the loop for good
                if time.monotonic() - started >= self._backoff.max:
                    delay = self._backoff.first
                self.failed(stage, error, restart_in_seconds=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff.max)

    async def watch_readiness(self, set_health: Callable[[bool], Awaitable[None]], interval: float = 1.0) -> None:
        """Keep health SERVING exactly while the readiness check passes; log each change."""
        current: bool | None = None
        while True:
            ready = self.readiness.ready()
            if ready != current:
                await set_health(ready)
                if ready:
                    log.info("controlplane.ready")
                elif current is not None:
                    log.warning("controlplane.not_ready", reason=self.readiness.reason())
                current = ready
            await asyncio.sleep(interval)
