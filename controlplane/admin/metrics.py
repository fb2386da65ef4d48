"""Prometheus metrics of one control plane (its own registry: no global state)."""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector, start_http_server

from controlplane import __version__
from controlplane.errors import ListenError, SettingsError
from controlplane.server.listen import ensure_free, is_loopback

if TYPE_CHECKING:
    from controlplane.cache.store import SnapshotCache
    from controlplane.model.label_cache import TaskDefinitionLabels

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
        self.cache_interned_bytes = Gauge(
            "controlplane_cache_interned_bytes", "Estimated bytes of the serialized resources kept for sharing across roles", registry=r
        )
        self.label_cache_bytes = Gauge(
            "controlplane_label_cache_bytes", "Estimated bytes of the parsed labels kept by task-definition ARN", registry=r
        )
        self.label_cache_entries = Gauge(
            "controlplane_label_cache_task_definitions", "Task definitions whose parsed labels are kept", registry=r
        )
        self.refused_streams = Counter(
            "controlplane_xds_streams_refused_total",
            "xDS streams refused before serving (reason: role_limit, unauthenticated, permission_denied, draining)",
            ["reason"],
            registry=r,
        )
        self.draining = Gauge("controlplane_xds_draining", "1 while this replica drains its xDS streams (after SIGTERM)", registry=r)
        self.drained_streams = Counter(
            "controlplane_xds_streams_drained_total", "xDS streams this replica closed while draining, so their proxies move", registry=r
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
        self.ecs_requests = Counter(
            "controlplane_ecs_requests_total", "HTTP requests to the ECS API, retries included (what AWS counts)", ["operation"], registry=r
        )
        self.ecs_request_wait = Counter(
            "controlplane_ecs_request_wait_seconds_total", "Seconds ECS requests waited for this replica's request budget", registry=r
        )
        self.ecs_request_limit = Gauge(
            "controlplane_ecs_request_limit_per_second", "This replica's cap on ECS requests per second (--ecs-max-calls-per-second)", registry=r
        )
        self.ecs_errors = Counter("controlplane_ecs_sync_errors_total", "Failed syncs of a cluster", ["cluster", "error"], registry=r)
        self.ecs_throttles = Counter("controlplane_ecs_throttles_total", "Syncs that failed on throttling", ["cluster"], registry=r)
        self.view_age = Gauge("controlplane_ecs_view_age_seconds", "Age of the last good view of a cluster", ["cluster"], registry=r)
        self.sync_duration = Histogram(
            "controlplane_ecs_sync_duration_seconds", "Duration of one read of a cluster", ["cluster"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.event_messages = Counter(
            "controlplane_event_messages_total",
            "SQS event messages by outcome: applied, retried (left in the queue), ignored, other_cluster, unreadable",
            ["outcome"],
            registry=r,
        )
        self.events_unhandled = Counter(
            "controlplane_events_unhandled_total", "ECS events of a type discovery does not act on", ["detail_type"], registry=r
        )
        self.discovery_cache_entries = Gauge(
            "controlplane_discovery_cache_entries",
            "Entries in discovery's caches: task_definitions, container_instances, tasks, tombstones",
            ["cache"],
            registry=r,
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
        self.pipeline_failures = Counter(
            "controlplane_pipeline_failures_total",
            "Exceptions in the discovery loop, mesh builds or publishes (the last good config keeps being served)",
            ["stage"],
            registry=r,
        )
        self.degraded = Gauge("controlplane_degraded", "1 while a pipeline stage is failing, else 0", registry=r)
        self.ready = Gauge("controlplane_ready", "1 while health checks say SERVING, else 0", registry=r)
        self.config_age = Gauge(
            "controlplane_config_age_seconds", "Time since the served config was last confirmed against ECS", registry=r
        )
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
        self.cache_interned_bytes.set_function(cache.interned_bytes)

    def track_label_cache(self, labels: TaskDefinitionLabels) -> None:
        """The model's parsed-label cache, read at each scrape."""
        self.label_cache_bytes.set_function(labels.size_bytes)
        self.label_cache_entries.set_function(lambda: len(labels))

    def track_readiness(self, degraded: Callable[[], bool], ready: Callable[[], bool], config_age: Callable[[], float | None]) -> None:
        self.degraded.set_function(lambda: 1.0 if degraded() else 0.0)
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)
        self.config_age.set_function(lambda: _nan_if_none(config_age()))

    @staticmethod
    def check_exposure(address: str, *, insecure: bool) -> None:
        """SettingsError when /metrics (no authentication; it names services and roles) would leave loopback unasked."""
        if not is_loopback(address) and not insecure:
            raise SettingsError(
                f"metrics address {address} is not loopback and /metrics has no authentication: "
                "pass --metrics-insecure (CONTROLPLANE_METRICS_INSECURE=true) to serve it there anyway"
            )

    def serve(self, address: str, port: int, *, insecure: bool = False) -> tuple[object, int]:
        """Expose /metrics over HTTP; returns the server (call .shutdown()) and its port.

        The endpoint has no authentication and names services and roles: off loopback only when
        the operator says so (`insecure`).
        """
        self.check_exposure(address, insecure=insecure)
        ensure_free("metrics", address, port)
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as error:
            raise ListenError(f"metrics cannot listen on {address}:{port}: {error.strerror}") from None
        return server, int(server.server_port)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value
