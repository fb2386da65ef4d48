"""Where the server reports what happened on each stream: metrics and the event bus."""

from __future__ import annotations

import time
from typing import Any

from controlplane.admin.event_bus import Event, EventBus
from controlplane.admin.metrics import Metrics, role_kind
from controlplane.server.registry import ProxyRecord
from controlplane.xds.types import TypeUrl

SHORT = {type_url: type_url.short for type_url in TypeUrl}


class Telemetry:
    """Implements the server's StreamObserver: counts, times and publishes stream events."""

    def __init__(self, metrics: Metrics, events: EventBus) -> None:
        self.metrics = metrics
        self.events = events
        self.mesh_updated_at: float | None = None
        # The labelled children of the per-push and per-ACK metrics, looked up once per type
        # (prometheus_client's labels() sorts and validates on every call: ~10 us per push and ACK).
        self._children: dict[tuple[str, TypeUrl], Any] = {}

    def mesh_updated(self, revision: int, services: int, endpoints: int, problems: int) -> None:
        self.mesh_updated_at = time.time()
        self.metrics.mesh_updates.inc()
        self.events.publish(
            Event(
                kind="mesh_updated",
                version=str(revision),
                message=f"{services} services, {endpoints} endpoints, {problems} problems",
                details={"services": str(services), "endpoints": str(endpoints), "problems": str(problems)},
            )
        )

    def connected(self, record: ProxyRecord) -> None:
        self.metrics.connected_proxies.labels(role=role_kind(record.role)).inc()
        self.events.publish(Event(kind="proxy_connected", node_id=record.node_id, details={"peer": record.peer, "role": record.role}))

    def disconnected(self, record: ProxyRecord) -> None:
        self.metrics.connected_proxies.labels(role=role_kind(record.role)).dec()
        self.events.publish(Event(kind="proxy_disconnected", node_id=record.node_id))

    def refused(self, node_id: str, reason: str) -> None:
        self.metrics.refused_streams.labels(reason=reason).inc()

    def _child(self, metric: str, type_url: TypeUrl) -> Any:
        child = self._children.get((metric, type_url))
        if child is None:  # created on first use, so a type never pushed shows no series, as before
            child = self._children[metric, type_url] = getattr(self.metrics, metric).labels(type=SHORT[type_url])
        return child

    # pushed() and acked() run for every response and ACK of every stream: no event is built when
    # nobody watches, and type names and metric children come from tables.
    def pushed(self, record: ProxyRecord, type_url: TypeUrl, version: str, resources: int) -> None:
        short = SHORT[type_url]
        self._child("pushes", type_url).inc()
        if self.events.subscribers:
            self.events.publish(Event(kind="push", node_id=record.node_id, type=short, version=version, details={"resources": str(resources)}))

    def acked(self, record: ProxyRecord, type_url: TypeUrl, version: str, sent_at: float | None) -> None:
        now = time.time()
        short = SHORT[type_url]
        self._child("acks", type_url).inc()
        if sent_at is not None:
            self._child("ack_latency", type_url).observe(max(0.0, now - sent_at))
        # Convergence is the time a change takes to reach proxies that were already connected; a proxy's
        # first sync after it connects is not a change reaching it.
        changed = self.mesh_updated_at
        if changed is not None and sent_at is not None and sent_at >= changed and record.connected_at < changed:
            self._child("convergence", type_url).observe(max(0.0, now - changed))
        if self.events.subscribers:
            self.events.publish(Event(kind="ack", node_id=record.node_id, type=short, version=version))

    def nacked(self, record: ProxyRecord, type_url: TypeUrl, version: str, message: str) -> None:
        self.metrics.nacks.labels(type=type_url.short).inc()
        self.events.publish(Event(kind="nack", node_id=record.node_id, type=type_url.short, version=version, message=message))

    def resent(self, record: ProxyRecord, type_url: TypeUrl, version: str) -> None:
        self.metrics.nack_resends.labels(type=type_url.short).inc()
        self.events.publish(Event(kind="nack_resend", node_id=record.node_id, type=type_url.short, version=version))
