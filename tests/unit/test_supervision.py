"""Pipeline failures are survived, reported and turn health NOT_SERVING once the served config is too old."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.admin.event_bus import EventBus
from controlplane.admin.metrics import Metrics
from controlplane.admin.readiness import Readiness
from controlplane.supervision import Backoff, Supervisor

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FirstView:
    def __init__(self, done: bool = True) -> None:
        self.done = done

    def is_set(self) -> bool:
        return self.done


def readiness(clock: Clock, views: list[float | None], first_view: bool = True, window: float = 60.0) -> Readiness:
    return Readiness(window, FirstView(first_view), lambda: views, clock=clock)


def test_not_ready_before_the_first_view() -> None:
    clock = Clock()
    r = readiness(clock, [None], first_view=False)
    assert not r.ready() and r.reason() == "no complete view of ECS yet"


def test_ready_while_the_oldest_view_is_younger_than_the_window() -> None:
    clock = Clock()
    views: list[float | None] = [clock.now, clock.now - 30]
    r = readiness(clock, views)
    assert r.ready() and r.config_age_seconds() == 30
    clock.now += 31
    assert not r.ready()
    assert r.reason() == "served config unconfirmed for 61s (> 60s): reads of ECS failing"
    views[1] = clock.now  # the failing cluster is read again
    assert r.ready()


def test_a_failing_build_degrades_at_once_and_unreadies_after_the_window() -> None:
    clock = Clock()
    views: list[float | None] = [clock.now]
    r = readiness(clock, views)
    r.failed("build", OverflowError("int too large"))
    clock.now += 10
    r.failed("build", OverflowError("int too large again"))
    views[0] = clock.now  # reads go on succeeding: that does not confirm a config that failed to build
    assert r.degraded and r.ready()
    (failure,) = r.failures
    assert (failure.stage, failure.error, failure.consecutive, failure.since) == ("build", "OverflowError: int too large again", 2, 1000.0)
    clock.now += 51
    assert not r.ready()
    assert r.reason().endswith("build: OverflowError: int too large again")
    assert [f.stage for f in r.succeeded("build", "publish")] == ["build"]
    assert r.ready() and not r.degraded and r.failures_total == 2


def run_supervised(failures: int) -> tuple[Supervisor, Metrics, list[str], int]:
    metrics, events = Metrics(), EventBus()
    clock = Clock()
    supervisor = Supervisor(readiness(clock, [clock.now]), metrics, events, Backoff(first=0.01, max=0.05))
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs <= failures:
            raise KeyError(f"poison {runs}")

    async def scenario() -> list[str]:
        seen: list[str] = []

        async def watch() -> None:
            async for event in events.subscribe():
                seen.append(f"{event.kind}:{event.message}")

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0)
        await asyncio.wait_for(supervisor.keep_running("discovery", flaky), 5)
        await asyncio.sleep(0)
        watcher.cancel()
        return seen

    seen = asyncio.run(scenario())
    return supervisor, metrics, seen, runs


def test_a_loop_that_raises_is_restarted_counted_and_reported() -> None:
    supervisor, metrics, seen, runs = run_supervised(failures=3)
    assert runs == 4
    assert metrics.registry.get_sample_value("controlplane_pipeline_failures_total", {"stage": "discovery"}) == 3
    assert seen == ["pipeline_failed:KeyError: 'poison 1'", "pipeline_failed:KeyError: 'poison 2'", "pipeline_failed:KeyError: 'poison 3'"]
    (failure,) = supervisor.readiness.failures
    assert (failure.stage, failure.consecutive) == ("discovery", 3)
    assert metrics.registry.get_sample_value("controlplane_degraded") == 1
    supervisor.succeeded("discovery")
    assert metrics.registry.get_sample_value("controlplane_degraded") == 0
    assert metrics.registry.get_sample_value("controlplane_ready") == 1


def test_health_follows_readiness() -> None:
    clock = Clock()
    views: list[float | None] = [clock.now]
    supervisor = Supervisor(readiness(clock, views, window=5), Metrics(), EventBus())
    health: list[bool] = []

    async def scenario() -> None:
        async def set_health(ready: bool) -> None:
            health.append(ready)

        watcher = asyncio.create_task(supervisor.watch_readiness(set_health, interval=0.01))
        await asyncio.sleep(0.05)
        clock.now += 6
        await asyncio.sleep(0.05)
        views[0] = clock.now
        await asyncio.sleep(0.05)
        watcher.cancel()

    asyncio.run(scenario())
    assert health == [True, False, True]
