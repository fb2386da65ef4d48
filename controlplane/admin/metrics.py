"""Prometheus metrics of one control plane (its own registry: no global state)."""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector, start_http_server

if TYPE_CHECKING:
    from controlplane.cache.store import SnapshotCache

from controlplane import __version__

# Waits here range from milliseconds (an ACK on loopback) to minutes (a proxy on a slow link, an ECS read
# under throttling), so the buckets reach five minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def role_kind(role: str) -> str:
    """A role's kind (edge, sidecar, grpc-client) for metric labels: bounded, unlike the role itself."""
    return role.split("/", 1)[0] or "unknown"


class Metrics:
    """Every metric we export. Names follow Prometheus conventions: `controlplane_*`, `_total`, `_seconds`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.build_info = Gauge("controlplane_build_info", "Always 1; labels say what is running", ["version", "python"], registry=r)
        self.build_info.labels(version=__version__, python=platform.python_version()).set(1)
        self.connected_proxies = Gauge("controlplane_connected_proxies", "xDS streams open now, by role kind", ["role"], registry=r)
        self.pushes = Counter("controlplane_xds_pushes_total", "xDS responses sent", ["type"], registry=r)
        self.acks = Counter("controlplane_xds_acks_total", "xDS responses ACKed", ["type"], registry=r)
        self.nacks = Counter("controlplane_xds_nacks_total", "xDS responses rejected by a proxy", ["type"], registry=r)
        self.cache_roles = Gauge("controlplane_cache_roles", "Proxy roles served now (each held by one or more streams)", registry=r)
        self.cache_snapshots = Gauge("controlplane_cache_snapshots", "Role snapshots kept by the cache", registry=r)
        self.cache_interned = Gauge("controlplane_cache_interned_resources", "Serialized resources kept for sharing across roles", registry=r)
        self.refused_streams = Counter(
            "controlplane_xds_streams_refused_total", "xDS streams refused before serving (reason: role_limit)", ["reason"], registry=r
        )
        self.nack_resends = Counter(
            "controlplane_xds_nack_resends_total", "Rejected resources offered again after the NACK backoff", ["type"], registry=r
        )
        self.ack_latency = Histogram(
            "controlplane_xds_ack_latency_seconds", "From sending a response to its ACK", ["type"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.convergence = Histogram(
            "controlplane_convergence_seconds",
            "From a new view of ECS (mesh update) to a proxy connected before it ACKing the resulting push",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ecs_calls = Counter("controlplane_ecs_api_calls_total", "ECS/EC2 API calls", ["cluster", "operation"], registry=r)
        self.ecs_errors = Counter("controlplane_ecs_sync_errors_total", "Failed syncs of a cluster", ["cluster", "error"], registry=r)
        self.ecs_throttles = Counter("controlplane_ecs_throttles_total", "Syncs that failed on throttling", ["cluster"], registry=r)
        self.view_age = Gauge("controlplane_ecs_view_age_seconds", "Age of the last good view of a cluster", ["cluster"], registry=r)
        self.sync_duration = Histogram(
            "controlplane_ecs_sync_duration_seconds", "Duration of one read of a cluster", ["cluster"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.services = Gauge("controlplane_services", "Services served", registry=r)
        self.endpoints = Gauge("controlplane_endpoints", "Endpoints announced", ["health"], registry=r)
        self.services_with_errors = Gauge("controlplane_services_with_errors", "Services with validation errors", registry=r)
        self.label_problems = Gauge(
            "controlplane_label_problems",
            "Label problems in the current mesh, by kind (docs/labels.md, Problems) and severity (error, warning)",
            ["kind", "severity"],
            registry=r,
        )
        self.mesh_updates = Counter("controlplane_mesh_updates_total", "New meshes published", registry=r)
        self.certificate_expiry = Gauge(
            "controlplane_edge_certificate_expiry_timestamp_seconds", "When an edge certificate being served expires", ["certificate"], registry=r
        )
        self.certificate_reload_failures = Counter(
            "controlplane_edge_certificate_reload_failures_total", "Re-reads of an edge certificate that failed (the last good one stays)", ["certificate"], registry=r
        )
        self.translation_cache_bytes = Gauge(
            "controlplane_translation_cache_bytes", "Estimated memory of the Envoy messages the translation memo keeps for reuse", registry=r
        )

    def track_view_age(self, cluster: str, last_success: Callable[[], float | None]) -> None:
        def age() -> float:
            at = last_success()
            return float("nan") if at is None else time.time() - at

        self.view_age.labels(cluster=cluster).set_function(age)

    def track_translation_cache(self, size_bytes: Callable[[], int]) -> None:
        self.translation_cache_bytes.set_function(size_bytes)

    def track_cache(self, cache: SnapshotCache) -> None:
        """The snapshot cache's own size, read at each scrape."""
        self.cache_roles.set_function(lambda: cache.live_roles)
        self.cache_snapshots.set_function(lambda: cache.snapshots)
        self.cache_interned.set_function(lambda: cache.interned)

    def serve(self, address: str, port: int) -> tuple[object, int]:
        """Expose /metrics over HTTP; returns the server (call .shutdown()) and its port."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server, int(server.server_port)
