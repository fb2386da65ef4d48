"""Discovery's loop: keeps a view of every watched ECS cluster, by polling or by ECS events plus
periodic resyncs, and publishes the views when they change. Fails static on errors.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter
from typing import Callable, Sequence, TypeVar

import structlog

from controlplane.discovery.cadence import Cadence, health_refresh_delay, poll_delay
from controlplane.discovery.ecs_api import CountingClient, list_clusters
from controlplane.discovery.executor import DaemonThreadExecutor
from controlplane.discovery.reader import ClusterReader, ReadResult
from controlplane.discovery.sqs_events import (
    MAX_RECEIVES,
    OtherEvent,
    QueueMessage,
    SqsEventSource,
    TaskChange,
    Unreadable,
    cluster_name,
    parse_message,
)
from controlplane.discovery.state import ClusterState
from controlplane.discovery.status import ClusterSyncStatus

log = structlog.get_logger()
T = TypeVar("T")

# Before the first publish every cluster is read once; a cluster that fails this many reads in a
# row no longer holds the others back (it is reported in the status and published once readable).
STARTUP_FAILURES_BEFORE_PUBLISHING_WITHOUT = 2


class ClusterWatch:
    """Reads each cluster and publishes the views when they change.

    Polling: a full read of each cluster every `poll_interval` seconds, every
    `deployment_poll_interval` while a deployment is in progress in it, and every
    `health_refresh` while a health-checked task there has not reported HEALTHY yet.
    Events: a full read at start and every `resync_interval` seconds (every `poll_interval`
    while the queue or the cluster is failing); in between, the tasks named by events, applied in
    debounced bursts, and health refreshes (events carry no health).

    An API error for a cluster keeps that cluster's last known-good view: endpoints are never
    removed because a call failed. Event messages are deleted only after the change they carry
    was published (or found to be old news); messages that cannot be applied stay in the queue.
    """

    def __init__(
        self,
        clusters: Sequence[str],
        reader: ClusterReader,
        publish: Callable[[list[ClusterState]], None],
        cadence: Cadence = Cadence(),
        on_sync: Callable[[ClusterSyncStatus, Exception | None], None] | None = None,
        *,
        events: SqsEventSource | None = None,
        discover_clusters: bool = False,
        max_concurrency: int = 4,
        trust_event_details: bool = True,
        on_message: Callable[[str, str | None], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._reader = reader
        self._rng = rng or random.Random()
        self._on_sync = on_sync or (lambda status, error: None)
        self._on_message = on_message or (lambda outcome, detail_type: None)
        self._clusters = list(dict.fromkeys(cluster_name(c) for c in clusters))
        self._publish = publish
        self.cadence = cadence
        self._events = events
        self._discover_clusters = discover_clusters
        self._trust_details = trust_event_details
        self._views: dict[str, ClusterState] = {}
        self.status = {cluster: ClusterSyncStatus(cluster) for cluster in self._clusters}
        self._published: list[ClusterState] | None = None
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self._cluster_locks: dict[str, asyncio.Lock] = {}
        self._discovered_once = not discover_clusters
        self._next_discover = 0.0
        self._next_read: dict[str, float] = {}
        self._last_read: dict[str, float] = {}
        self._next_refresh: dict[str, float] = {}
        # Blocking AWS calls: daemon threads, so that shutdown never waits for one in flight.
        self._executor = DaemonThreadExecutor(max(1, max_concurrency) + 2)
        self.first_view = asyncio.Event()

    def view(self, cluster: str) -> ClusterState | None:
        """The last known-good view of `cluster` (None before its first successful read)."""
        return self._views.get(cluster)

    @property
    def clusters(self) -> list[str]:
        return list(self._clusters)

    @property
    def mode(self) -> str:
        return "events" if self._events is not None else "polling"

    @property
    def reader(self) -> ClusterReader:
        return self._reader

    async def _blocking(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """Stop receiving events; calls in flight are abandoned, not waited for."""
        if self._events is not None:
            self._events.stop()
        self._executor.shutdown(wait=False)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Discover until cancelled."""
        inbox: asyncio.Queue[list[QueueMessage]] | None = None
        if self._events is not None:
            inbox = asyncio.Queue()
            self._events.start(_deliverer(asyncio.get_running_loop(), inbox))
            log.info(
                "discovery.events_started", queue=self._events.queue_url, resync_seconds=self.cadence.resync_interval
            )
        try:
            while True:
                await self.run_due()
                timeout = max(0.0, self._next_due() - time.monotonic())
                if inbox is not None:
                    # Wake up at least every poll interval to notice a failing queue.
                    timeout = min(timeout, self.cadence.poll_interval)
                if inbox is None:
                    await asyncio.sleep(timeout)
                    continue
                burst = await self._collect(inbox, timeout)
                if burst:
                    await self.apply_messages(burst)
        finally:
            self.close()

    def _next_due(self) -> float:
        times = [self._next_read.get(c, 0.0) for c in self._clusters] + list(self._next_refresh.values())
        if self._discover_clusters:
            times.append(self._next_discover)
        return min(times, default=time.monotonic() + self.cadence.poll_interval)

    async def run_due(self) -> None:
        """Every read and health refresh that is due now, then publish."""
        now = time.monotonic()
        if self._events is not None and self._events.failing:
            # The queue is down: events may be lost, so poll until it answers again.
            for cluster in self._clusters:
                due = self._last_read.get(cluster, 0.0) + self.cadence.poll_interval
                self._next_read[cluster] = min(self._next_read.get(cluster, 0.0), due)
        if self._discover_clusters and now >= self._next_discover:
            await self._discover()
            self._next_discover = now + self._jittered(self.cadence.resync_interval if self._events else self.cadence.poll_interval)
        reads = [c for c in self._clusters if self._next_read.get(c, 0.0) <= now]
        refreshes = [c for c in self._clusters if c not in reads and self._next_refresh.get(c, math.inf) <= now]
        if not reads and not refreshes:
            return
        await asyncio.gather(*(self._sync(c) for c in reads), *(self._refresh(c) for c in refreshes))
        self._maybe_publish()

    async def sync_once(self) -> None:
        """A full read of every cluster now (at most `max_concurrency` at once), then publish."""
        if self._discover_clusters:
            await self._discover()
        await asyncio.gather(*(self._sync(cluster) for cluster in list(self._clusters)))
        self._maybe_publish()

    async def _collect(self, inbox: asyncio.Queue[list[QueueMessage]], timeout: float) -> list[QueueMessage]:
        """The next burst: wait up to `timeout` for a first batch, then until quiet or max."""
        try:
            first = await asyncio.wait_for(inbox.get(), timeout=max(timeout, 0.0))
        except asyncio.TimeoutError:
            return []
        burst = list(first)
        debounce = self.cadence.debounce
        deadline = time.monotonic() + debounce.max
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return burst
            try:
                more = await asyncio.wait_for(inbox.get(), timeout=min(debounce.quiet, remaining))
            except asyncio.TimeoutError:
                return burst
            burst.extend(more)

    # -- scheduling -------------------------------------------------------------------------------

    def _failing(self, cluster: str) -> bool:
        return bool(self.status[cluster].consecutive_failures) or cluster not in self._views

    def _schedule(self, cluster: str) -> None:
        now = time.monotonic()
        view = self._views.get(cluster)
        if self._events is None:
            delay = self.cadence.poll_interval if self._failing(cluster) else poll_delay(view, self.cadence)
        elif self._failing(cluster) or self._events.failing:
            delay = self.cadence.poll_interval
        else:
            delay = self.cadence.resync_interval
        self._next_read[cluster] = now + self._jittered(delay)
        self._schedule_refresh(cluster)

    def _jittered(self, seconds: float) -> float:
        return self.cadence.jittered(seconds, self._rng.uniform(-1.0, 1.0))

    def _schedule_refresh(self, cluster: str) -> None:
        if self._events is None:
            return  # every poll describes every task: health comes with it
        refresh = health_refresh_delay(self._views.get(cluster), len(self._reader.table(cluster).suspects), self.cadence)
        if refresh is None:
            self._next_refresh.pop(cluster, None)
        else:
            self._next_refresh[cluster] = time.monotonic() + self._jittered(refresh)

    # -- reads ------------------------------------------------------------------------------------

    async def _discover(self) -> None:
        def read() -> tuple[list[str], dict[str, int]]:
            calls: Counter[str] = Counter()
            names = [cluster_name(arn) for arn in list_clusters(CountingClient(self._reader.ecs, calls))]
            return names, dict(calls)

        try:
            names, calls = await self._blocking(read)
        except Exception as error:  # noqa: BLE001 - keep the clusters we know
            log.warning("discovery.list_clusters_failed", error=f"{type(error).__name__}: {error}")
            return
        self._discovered_once = True
        added = [n for n in names if n not in self.status]
        removed = [c for c in self._clusters if c not in names]
        for name in added:
            self.status[name] = ClusterSyncStatus(name)
        for name in removed:
            # A deleted cluster has no tasks; its view goes with it.
            self._views.pop(name, None)
            self.status.pop(name, None)
            self._next_read.pop(name, None)
            self._last_read.pop(name, None)
            self._next_refresh.pop(name, None)
            self._reader.forget(name)
        self._clusters = sorted(names)
        if added or removed:
            log.info("discovery.clusters_changed", added=added, removed=removed, api_calls=calls)

    def _lock(self, cluster: str) -> asyncio.Lock:
        # Full reads, refreshes and event applies of one cluster never interleave.
        return self._cluster_locks.setdefault(cluster, asyncio.Lock())

    async def _sync(self, cluster: str) -> None:
        async with self._semaphore, self._lock(cluster):
            if cluster in self.status:
                await self._run_read(cluster, "resync", lambda: self._reader.read(cluster))
                self._last_read[cluster] = time.monotonic()
                self._schedule(cluster)

    async def _refresh(self, cluster: str) -> None:
        async with self._semaphore, self._lock(cluster):
            if cluster not in self.status or cluster not in self._views:
                return
            every = self._next_refresh_is_steady(cluster)
            await self._run_read(cluster, "health", lambda: self._reader.refresh(cluster, every_health_check=every))
            self._schedule_refresh(cluster)

    def _next_refresh_is_steady(self, cluster: str) -> bool:
        delay = health_refresh_delay(self._views.get(cluster), len(self._reader.table(cluster).suspects), self.cadence)
        return delay == self.cadence.health_refresh_steady

    async def _run_read(self, cluster: str, kind: str, read: Callable[[], ReadResult]) -> bool:
        status = self.status[cluster]
        started = time.time()
        bound = log.bind(cluster=cluster, kind=kind)
        try:
            result = await self._blocking(read)
        except Exception as error:  # noqa: BLE001 - any failure keeps the last good view
            status.consecutive_failures += 1
            status.last_error = f"{type(error).__name__}: {error}"
            bound.warning(
                "discovery.sync_failed",
                error=status.last_error,
                consecutive_failures=status.consecutive_failures,
                view_age_seconds=round(status.staleness_seconds() or 0.0, 1) if status.last_success_at else None,
                kept_last_view=cluster in self._views,
            )
            self._on_sync(status, error)
            return False
        state, calls, applied = result.state, result.calls, result.applied
        status.last_duration_seconds = time.time() - started
        if kind == "resync":
            status.last_success_at = state.synced_at
        status.last_api_calls = calls
        for operation, count in calls.items():
            status.api_calls_total[operation] = status.api_calls_total.get(operation, 0) + count
        status.last_error = None
        status.consecutive_failures = 0
        self._on_sync(status, None)
        if kind != "resync" and cluster not in self._views:
            return True  # an event apply before the first full read does not make the view complete
        changed = not state.same_view(self._views.get(cluster))
        self._views[cluster] = state
        bound.log(
            20 if changed else 10,
            "discovery.synced",
            tasks=len(state.tasks),
            changed=changed,
            api_calls=sum(calls.values()),
            calls=dict(calls),
            applied=applied,
            seconds=round(status.last_duration_seconds, 3),
        )
        return True

    def _maybe_publish(self) -> bool:
        """Publish the views if they changed; False while nothing may be published yet."""
        if not self._discovered_once:
            return False
        missing = [c for c in self._clusters if c not in self._views]
        if missing and self._published is None:
            holding = [c for c in missing if self.status[c].consecutive_failures < STARTUP_FAILURES_BEFORE_PUBLISHING_WITHOUT]
            if holding:
                log.info("discovery.waiting_for_first_view", missing_clusters=holding)
                return False
        if missing and not self._views:
            return False
        views = [self._views[cluster] for cluster in self._clusters if cluster in self._views]
        if self._published is not None and len(views) == len(self._published) and all(
            a.same_view(b) for a, b in zip(views, self._published)
        ):
            return True
        if missing:
            log.warning("discovery.publishing_without", missing_clusters=missing)
        self._published = views
        self._publish(views)
        self.first_view.set()
        return True

    # -- events -----------------------------------------------------------------------------------

    async def apply_messages(self, messages: Sequence[QueueMessage]) -> None:
        """Apply a burst of queue messages, publish, then delete the messages that are done with."""
        by_cluster: dict[str, list[TaskChange]] = {}
        done: list[QueueMessage] = []  # safe to delete once the burst is published
        held: dict[str, list[QueueMessage]] = {}
        for message in messages:
            parsed = parse_message(message.body)
            if isinstance(parsed, TaskChange):
                if parsed.cluster in self.status:
                    by_cluster.setdefault(parsed.cluster, []).append(parsed)
                    held.setdefault(parsed.cluster, []).append(message)
                else:
                    log.debug("discovery.event_other_cluster", cluster=parsed.cluster, message_id=message.message_id)
                    self._on_message("other_cluster", None)
                    done.append(message)  # not ours to act on: keeping it would only redeliver it
            elif isinstance(parsed, OtherEvent):
                log.debug("discovery.event_ignored", detail_type=parsed.detail_type, message_id=message.message_id)
                self._on_message("ignored", parsed.detail_type)
                done.append(message)
            else:
                self._unreadable(message, parsed, done)

        async def apply(cluster: str, changes: list[TaskChange]) -> bool:
            async with self._semaphore, self._lock(cluster):
                if cluster not in self.status:
                    return True
                if cluster not in self._views:
                    # No full read yet: the first one will see these changes; keep the messages.
                    return False
                details = [c.detail for c in changes]
                ok = await self._run_read(
                    cluster, "events", lambda: self._reader.apply(cluster, details, trust_details=self._trust_details)
                )
                if ok:
                    self._schedule_refresh(cluster)
                return ok

        clusters = list(by_cluster)
        results = await asyncio.gather(*(apply(c, by_cluster[c]) for c in clusters))
        published = self._maybe_publish()
        for cluster, ok in zip(clusters, results):
            if ok and published:
                done.extend(held[cluster])
                for _ in held[cluster]:
                    self._on_message("applied", None)
            else:
                # The messages come back after their visibility timeout (and go to the
                # dead-letter queue after the queue's maxReceiveCount); the next resync (sooner
                # while failing) repairs the view meanwhile.
                for _ in held[cluster]:
                    self._on_message("retried", None)
        if done and self._events is not None:
            events = self._events
            await self._blocking(lambda: events.delete(done))

    def _unreadable(self, message: QueueMessage, parsed: Unreadable, done: list[QueueMessage]) -> None:
        given_up = message.receive_count >= MAX_RECEIVES
        log.warning(
            "discovery.event_unreadable",
            reason=parsed.reason,
            message_id=message.message_id,
            receive_count=message.receive_count,
            body=message.body[:200],
            deleted=given_up,
        )
        self._on_message("unreadable", None)
        if given_up:
            # Still here after this many receives: the queue has no redrive policy.
            done.append(message)


def _deliverer(
    loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[list[QueueMessage]]
) -> Callable[[list[QueueMessage]], None]:
    """A `deliver` callback that puts batches on an asyncio queue from the receiver thread."""

    def deliver(messages: list[QueueMessage]) -> None:
        loop.call_soon_threadsafe(inbox.put_nowait, messages)

    return deliver
