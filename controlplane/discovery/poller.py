"""Discovery: full reads of every cluster (polling, or periodic resync) plus, optionally, ECS
events from an SQS queue applied as they come. Fails static on errors.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import structlog

from controlplane.discovery.ecs import ClusterReader, CountingClient, TaskFilter
from controlplane.discovery.events import QueueMessage, SqsEventSource, TaskChange, cluster_name, parse_message, threadsafe_deliverer
from controlplane.discovery.state import ClusterState
from controlplane.discovery.taskdefs import TaskDefinitionCache

log = structlog.get_logger()


@dataclass
class ClusterSyncStatus:
    """How discovery of one cluster is going; read by the admin API and the logs."""

    cluster: str
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    last_duration_seconds: float | None = None
    last_api_calls: Mapping[str, int] | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    # "resync" (a full read) or "events" (changes named by events); what last_api_calls paid for.
    last_kind: str = "resync"
    events_applied: int = 0
    api_calls_total: dict[str, int] = field(default_factory=dict)

    def staleness_seconds(self, now: float | None = None) -> float | None:
        if self.last_success_at is None:
            return None
        return (now or time.time()) - self.last_success_at


@dataclass(frozen=True)
class Debounce:
    """Wait this long without a new event before applying a burst, but never longer than `max`."""

    quiet: float = 0.1
    max: float = 1.0


class PollingDiscovery:
    """Reads each cluster and publishes the views when they change.

    Without an event source: a full read of every cluster every `interval` seconds. With one: a
    full read at start and every `resync_interval` seconds (every `interval` while the queue or a
    cluster is failing), and in between the tasks named by events, applied in debounced bursts.

    An API error for a cluster keeps that cluster's last known-good view: endpoints are never
    removed because a call failed. Nothing is published until every cluster has been read once,
    so proxies never receive a partial view as if it were complete. Event messages are deleted
    only after the change they carry was published (or found to be old news).
    """

    def __init__(
        self,
        clusters: Sequence[str],
        ecs: Any,
        ec2: Any,
        publish: Callable[[list[ClusterState]], None],
        interval: float = 5.0,
        on_sync: Callable[[ClusterSyncStatus, Exception | None], None] | None = None,
        *,
        events: SqsEventSource | None = None,
        resync_interval: float = 300.0,
        debounce: Debounce = Debounce(),
        discover_clusters: bool = False,
        task_filter: TaskFilter | None = None,
        max_concurrency: int = 4,
        ssm: Any | None = None,
        trust_event_details: bool = True,
    ) -> None:
        self._on_sync = on_sync or (lambda status, error: None)
        self._ecs = ecs
        self._ec2 = ec2
        self._ssm = ssm
        self._filter = task_filter
        self._clusters = list(dict.fromkeys(cluster_name(c) for c in clusters))
        self._publish = publish
        self._interval = interval
        self._events = events
        self._resync_interval = resync_interval
        self._debounce = debounce
        self._discover_clusters = discover_clusters
        self._trust_details = trust_event_details
        self._task_definitions = TaskDefinitionCache()
        self._readers: dict[str, Any] = {cluster: self._reader() for cluster in self._clusters}
        self._views: dict[str, ClusterState] = {}
        self.status = {cluster: ClusterSyncStatus(cluster) for cluster in self._clusters}
        self._published: list[ClusterState] | None = None
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self._cluster_locks: dict[str, asyncio.Lock] = {}
        self._discovered_once = not discover_clusters
        self.first_view = asyncio.Event()
        # Time from receiving an event to publishing it, for the last bursts (seconds).
        self.last_event_lag_seconds: float | None = None

    def _reader(self) -> ClusterReader:
        return ClusterReader(self._ecs, self._ec2, self._task_definitions, ssm=self._ssm, task_filter=self._filter)

    def view(self, cluster: str) -> ClusterState | None:
        """The last known-good view of `cluster` (None before its first successful read)."""
        return self._views.get(cluster)

    @property
    def clusters(self) -> list[str]:
        return list(self._clusters)

    @property
    def mode(self) -> str:
        return "events" if self._events is not None else "polling"

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Discover until cancelled."""
        if self._events is None:
            while True:
                await self.sync_once()
                await asyncio.sleep(self._interval)
        inbox: asyncio.Queue[list[QueueMessage]] = asyncio.Queue()
        self._events.start(threadsafe_deliverer(asyncio.get_running_loop(), inbox))
        log.info("discovery.events_started", queue=self._events.queue_url, resync_seconds=self._resync_interval)
        try:
            next_resync = 0.0
            while True:
                if time.monotonic() >= next_resync:
                    await self.sync_once()
                    next_resync = time.monotonic() + self._next_resync_delay()
                burst = await self._collect(inbox, next_resync - time.monotonic())
                if burst:
                    await self.apply_messages(burst)
                    if self._any_failing():
                        next_resync = min(next_resync, time.monotonic() + self._interval)
        finally:
            self._events.stop()

    def _any_failing(self) -> bool:
        return any(s.consecutive_failures for s in self.status.values()) or len(self._views) < len(self._clusters)

    def _next_resync_delay(self) -> float:
        if self._any_failing() or (self._events is not None and self._events.failing):
            return self._interval
        return self._resync_interval

    async def _collect(self, inbox: asyncio.Queue[list[QueueMessage]], timeout: float) -> list[QueueMessage]:
        """The next burst: wait up to `timeout` for a first batch, then until quiet or max."""
        try:
            first = await asyncio.wait_for(inbox.get(), timeout=max(timeout, 0.0))
        except asyncio.TimeoutError:
            return []
        burst = list(first)
        deadline = time.monotonic() + self._debounce.max
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return burst
            try:
                more = await asyncio.wait_for(inbox.get(), timeout=min(self._debounce.quiet, remaining))
            except asyncio.TimeoutError:
                return burst
            burst.extend(more)

    # -- full reads -----------------------------------------------------------------------------

    async def sync_once(self) -> None:
        """A full read of every cluster (at most `max_concurrency` at once), then publish."""
        if self._discover_clusters:
            await self._discover()
        await asyncio.gather(*(self._sync(cluster) for cluster in list(self._clusters)))
        self._maybe_publish()

    async def _discover(self) -> None:
        calls: dict[str, int] = {}

        def list_clusters() -> list[str]:
            counter: Counter[str] = Counter()
            ecs = CountingClient(self._ecs, counter)
            names: list[str] = []
            token: str | None = None
            while True:
                response = ecs.call("ListClusters", **({"nextToken": token} if token else {}))
                names.extend(cluster_name(arn) for arn in response.get("clusterArns", ()))
                token = response.get("nextToken")
                if not token:
                    calls.update(counter)
                    return names

        try:
            names = await asyncio.to_thread(list_clusters)
        except Exception as error:  # noqa: BLE001 - keep the clusters we know
            log.warning("discovery.list_clusters_failed", error=f"{type(error).__name__}: {error}")
            return
        self._discovered_once = True
        added = [n for n in names if n not in self._readers]
        removed = [c for c in self._clusters if c not in names]
        for name in added:
            self._readers[name] = self._reader()
            self.status[name] = ClusterSyncStatus(name)
        for name in removed:
            # A deleted cluster has no tasks; its view goes with it.
            self._readers.pop(name, None)
            self._views.pop(name, None)
            self.status.pop(name, None)
        self._clusters = sorted(names)
        if added or removed:
            log.info("discovery.clusters_changed", added=added, removed=removed, api_calls=calls)

    def _lock(self, cluster: str) -> asyncio.Lock:
        # Full reads and event applies of one cluster never interleave: each sees the other's result.
        return self._cluster_locks.setdefault(cluster, asyncio.Lock())

    async def _sync(self, cluster: str) -> None:
        async with self._semaphore, self._lock(cluster):
            reader = self._readers.get(cluster)
            if reader is None:
                return
            await self._run_read(cluster, "resync", lambda: reader.read(cluster))

    async def _run_read(self, cluster: str, kind: str, read: Callable[[], tuple[Any, ...]]) -> bool:
        status = self.status[cluster]
        started = time.time()
        status.last_attempt_at = started
        bound = log.bind(cluster=cluster, kind=kind)
        try:
            result = await asyncio.to_thread(read)
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
        state, calls = result[0], result[1]
        applied = result[2] if len(result) > 2 else None
        status.last_duration_seconds = time.time() - started
        if kind == "resync" or status.last_success_at is not None:
            # An event apply before the first full read does not make the view complete.
            status.last_success_at = state.synced_at if kind == "resync" else status.last_success_at
        status.last_api_calls = calls
        status.last_kind = kind
        for operation, count in calls.items():
            status.api_calls_total[operation] = status.api_calls_total.get(operation, 0) + count
        if applied:
            status.events_applied += applied
        status.last_error = None
        status.consecutive_failures = 0
        self._on_sync(status, None)
        if kind == "events" and cluster not in self._views:
            return True
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
        if not self._discovered_once:
            return False
        if len(self._views) < len(self._clusters):
            missing = [c for c in self._clusters if c not in self._views]
            log.warning("discovery.waiting_for_first_view", missing_clusters=missing)
            return False
        views = [self._views[cluster] for cluster in self._clusters]
        if self._published is not None and len(views) == len(self._published) and all(
            a.same_view(b) for a, b in zip(views, self._published)
        ):
            return True
        self._published = views
        self._publish(views)
        self.first_view.set()
        return True

    # -- events -----------------------------------------------------------------------------------

    async def apply_messages(self, messages: Sequence[QueueMessage]) -> None:
        """Apply a burst of queue messages, publish, then delete the messages that are done with."""
        received_at = time.monotonic()
        by_cluster: dict[str, list[TaskChange]] = {}
        done: list[QueueMessage] = []  # safe to delete once the burst is published
        held: dict[str, list[QueueMessage]] = {}
        for message in messages:
            change = parse_message(message.body)
            if change is None or change.cluster not in self._readers:
                done.append(message)  # not ours to act on: keeping it would only redeliver it
                continue
            by_cluster.setdefault(change.cluster, []).append(change)
            held.setdefault(change.cluster, []).append(message)

        async def apply(cluster: str, changes: list[TaskChange]) -> bool:
            async with self._semaphore, self._lock(cluster):
                reader = self._readers.get(cluster)
                if reader is None:
                    return True
                if cluster not in self._views:
                    # No full read yet: the first one will see these changes; keep the messages.
                    return False
                details = [c.detail for c in changes]
                return await self._run_read(
                    cluster, "events", lambda: reader.apply(cluster, details, trust_details=self._trust_details)
                )

        clusters = list(by_cluster)
        results = await asyncio.gather(*(apply(c, by_cluster[c]) for c in clusters))
        published = self._maybe_publish()
        for cluster, ok in zip(clusters, results):
            if ok and published:
                done.extend(held[cluster])
            # else: the messages come back after their visibility timeout; the next resync
            # (sooner while failing) repairs the view meanwhile.
        self.last_event_lag_seconds = time.monotonic() - received_at
        if done and self._events is not None:
            await asyncio.to_thread(self._events.delete, done)
