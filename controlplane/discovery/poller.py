"""Polling discovery: read every configured cluster on an interval, fail static on errors."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import structlog

from controlplane.discovery.ecs import ClusterReader
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

    def staleness_seconds(self, now: float | None = None) -> float | None:
        if self.last_success_at is None:
            return None
        return (now or time.time()) - self.last_success_at


class PollingDiscovery:
    """Reads each cluster every `interval` seconds and publishes the views when they change.

    An API error for a cluster keeps that cluster's last known-good view: endpoints are never
    removed because a call failed. Nothing is published until every cluster has been read once,
    so proxies never receive a partial view as if it were complete.
    """

    def __init__(
        self,
        clusters: Sequence[str],
        ecs: Any,
        ec2: Any,
        publish: Callable[[list[ClusterState]], None],
        interval: float = 5.0,
        on_sync: Callable[[ClusterSyncStatus, Exception | None], None] | None = None,
    ) -> None:
        self._on_sync = on_sync or (lambda status, error: None)
        self._clusters = list(dict.fromkeys(clusters))
        self._publish = publish
        self._interval = interval
        task_definitions = TaskDefinitionCache()
        self._readers = {cluster: ClusterReader(ecs, ec2, task_definitions) for cluster in self._clusters}
        self._views: dict[str, ClusterState] = {}
        self.status = {cluster: ClusterSyncStatus(cluster) for cluster in self._clusters}
        self._published: list[ClusterState] | None = None
        self.first_view = asyncio.Event()

    def view(self, cluster: str) -> ClusterState | None:
        """The last known-good view of `cluster` (None before its first successful read)."""
        return self._views.get(cluster)

    @property
    def clusters(self) -> list[str]:
        return list(self._clusters)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.sync_once()
            await asyncio.sleep(self._interval)

    async def sync_once(self) -> None:
        for cluster in self._clusters:
            await self._sync(cluster)
        if len(self._views) < len(self._clusters):
            missing = [c for c in self._clusters if c not in self._views]
            log.warning("discovery.waiting_for_first_view", missing_clusters=missing)
            return
        views = [self._views[cluster] for cluster in self._clusters]
        if self._published is not None and all(a.same_view(b) for a, b in zip(views, self._published)):
            return
        self._published = views
        self._publish(views)
        self.first_view.set()

    async def _sync(self, cluster: str) -> None:
        status = self.status[cluster]
        started = time.time()
        status.last_attempt_at = started
        bound = log.bind(cluster=cluster)
        try:
            state, calls = await asyncio.to_thread(self._readers[cluster].read, cluster)
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
            return
        status.last_duration_seconds = time.time() - started
        status.last_success_at = state.synced_at
        status.last_api_calls = calls
        status.last_error = None
        status.consecutive_failures = 0
        self._on_sync(status, None)
        changed = not state.same_view(self._views.get(cluster))
        self._views[cluster] = state
        bound.log(
            20 if changed else 10,
            "discovery.synced",
            tasks=len(state.tasks),
            changed=changed,
            api_calls=sum(calls.values()),
            seconds=round(status.last_duration_seconds, 3),
        )
