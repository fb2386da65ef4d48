"""The long-running control plane: discovery -> model -> translate -> cache -> serve."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Callable

import boto3
import grpc
import structlog
from botocore.config import Config
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dataclasses import replace

from controlplane.admin.csds import ClientStatusService
from controlplane.admin.dashboard import Dashboard
from controlplane.admin.server import build_admin_server, is_loopback, server_credentials
from controlplane.admin.service import AdminService
from controlplane.cache.store import SnapshotCache
from controlplane.discovery.ecs import TaskFilter
from controlplane.discovery.events import SqsEventSource
from controlplane.discovery.poller import ClusterSyncStatus, PollingDiscovery
from controlplane.discovery.state import ClusterState
from controlplane.admin.event_bus import Event, EventBus
from controlplane.admin.metrics import Metrics
from controlplane.model.build import build_mesh
from controlplane.model.mesh import EndpointHealth, Mesh, ProblemKind
from controlplane.server.ads import DiscoveryServer
from controlplane.server.options import xds_server_options
from controlplane.server.registry import ProxyRegistry
from controlplane.server.subscriptions import NackBackoff
from controlplane.errors import SettingsError
from controlplane.secrets.certificate import CertificateSet
from controlplane.secrets.sources import CaFile, CertificateSource, file_source, secret_source
from controlplane.secrets.watcher import CertificateWatcher
from controlplane.settings import Settings
from controlplane.translate.edge_options import AccessLog, AccessLogFormat, EdgeLimits, EdgeOptions, GrpcStats, TlsPolicy
from controlplane.admin.telemetry import Telemetry

log = structlog.get_logger()


def aws_clients(settings: Settings) -> tuple[Any, Any]:
    """boto3 clients; AWS_ENDPOINT_URL_ECS / _EC2 point them at a local ECS with no special code."""
    # Adaptive mode rate-limits the client itself after throttles. A failed read is retried at the
    # next sync anyway (the last good view keeps serving), so attempts stay few.
    config = Config(retries={"mode": "adaptive", "max_attempts": settings.aws_max_attempts}, connect_timeout=5, read_timeout=20)
    session = boto3.session.Session(region_name=settings.region)
    return session.client("ecs", config=config), session.client("ec2", config=config)


def aws_discovery_clients(settings: Settings) -> tuple[Any, Any]:
    """SQS (long polls: the read timeout outlasts the 20 s wait) and SSM (ECS Anywhere addresses)."""
    session = boto3.session.Session(region_name=settings.region)
    sqs = session.client(
        "sqs", config=Config(retries={"mode": "adaptive", "max_attempts": settings.aws_max_attempts}, connect_timeout=5, read_timeout=30)
    )
    ssm = session.client("ssm", config=Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=20))
    return sqs, ssm


def edge_options(settings: Settings) -> EdgeOptions:
    """The edge listener's settings (certificates arrive later, from the CertificateWatcher)."""
    s = settings
    return EdgeOptions(
        tls=TlsPolicy(min_version=s.edge_tls_min_version, cipher_suites=tuple(s.edge_tls_cipher_suites)),
        access_log=AccessLog(format=AccessLogFormat(s.edge_access_log), sample_percent=s.edge_access_log_sample_percent),
        grpc_stats=GrpcStats(s.edge_grpc_stats),
        limits=EdgeLimits(
            trusted_hops=s.edge_trusted_hops,
            max_concurrent_streams=s.edge_max_concurrent_streams,
            initial_stream_window_bytes=s.edge_initial_stream_window_bytes,
            initial_connection_window_bytes=s.edge_initial_connection_window_bytes,
            max_request_headers_kb=s.edge_max_request_headers_kb,
            max_headers_count=s.edge_max_headers_count,
            connection_idle_timeout_seconds=s.edge_connection_idle_timeout_seconds,
            request_headers_timeout_seconds=s.edge_request_headers_timeout_seconds,
            per_connection_buffer_bytes=s.edge_per_connection_buffer_bytes,
        ),
    )


def certificate_watcher(settings: Settings, secretsmanager: Any | None, on_change: Callable[[CertificateSet], None], metrics: Metrics) -> CertificateWatcher | None:
    """None when the edge serves plaintext; SettingsError when the settings contradict each other."""
    s = settings
    if s.edge_plaintext and (s.edge_certificates or s.edge_certificate_secrets or s.edge_client_ca):
        raise SettingsError("--edge-plaintext serves no TLS: drop it, or drop --edge-certificate/--edge-certificate-secret/--edge-client-ca")
    if not (s.edge_certificates or s.edge_certificate_secrets):
        if s.edge_client_ca:
            raise SettingsError("--edge-client-ca needs an edge certificate (--edge-certificate or --edge-certificate-secret)")
        return None
    if s.edge_certificate_secrets and secretsmanager is None:
        session = boto3.session.Session(region_name=s.region)
        secretsmanager = session.client(
            "secretsmanager", config=Config(retries={"mode": "adaptive", "max_attempts": s.aws_max_attempts}, connect_timeout=5, read_timeout=20)
        )
    sources: list[CertificateSource] = [file_source(text) for text in s.edge_certificates]
    sources += [secret_source(text, secretsmanager) for text in s.edge_certificate_secrets]
    return CertificateWatcher(
        sources,
        on_change,
        client_ca=CaFile("client-ca", s.edge_client_ca) if s.edge_client_ca else None,
        file_poll_seconds=s.certificate_poll_seconds,
        secret_refresh_seconds=s.certificate_refresh_seconds,
        on_failure=lambda name, error: metrics.certificate_reload_failures.labels(certificate=name).inc(),
    )


class ControlPlane:
    """Wires the stages together; start() and stop() make it usable in-process by tests."""

    def __init__(
        self,
        settings: Settings,
        ecs: Any | None = None,
        ec2: Any | None = None,
        sqs: Any | None = None,
        ssm: Any | None = None,
        secretsmanager: Any | None = None,
    ) -> None:
        self.settings = settings
        if ecs is None or ec2 is None:
            ecs, ec2 = aws_clients(settings)
        if sqs is None or ssm is None:
            default_sqs, default_ssm = aws_discovery_clients(settings)
            sqs, ssm = sqs or default_sqs, ssm or default_ssm
        self.registry = ProxyRegistry()
        self.events = EventBus()
        self.metrics = Metrics()
        self.cache = SnapshotCache(edge=edge_options(settings), max_roles=settings.xds_max_roles)
        self.certificates = certificate_watcher(settings, secretsmanager, self._certificates_changed, self.metrics)
        self.telemetry = Telemetry(self.metrics, self.events)
        self.metrics.track_cache(self.cache)
        self.discovery = PollingDiscovery(
            settings.clusters,
            ecs,
            ec2,
            self.publish,
            interval=settings.poll_interval_seconds,
            on_sync=self._on_sync,
            events=SqsEventSource(sqs, settings.events_queue_url) if settings.events_queue_url else None,
            resync_interval=settings.resync_interval_seconds,
            discover_clusters=settings.discover_clusters,
            task_filter=TaskFilter(services=settings.service_filter, families=settings.family_filter),
            max_concurrency=settings.discovery_concurrency,
            ssm=ssm,
            trust_event_details=settings.events_trust_details,
        )
        for cluster in self.discovery.clusters:
            self.metrics.track_view_age(cluster, self._last_success_of(cluster))
        self.metrics.track_translation_cache(self.cache.memo.size_bytes)
        self._xds_server: grpc.aio.Server | None = None
        self._admin_server: grpc.aio.Server | None = None
        self._metrics_server: Any = None
        self._health = health.aio.HealthServicer()
        self._admin_health: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self.xds_port: int | None = None
        self.admin_port: int | None = None
        self.metrics_port: int | None = None
        self.dashboard_port: int | None = None
        self._dashboard: Dashboard | None = None
        self._started = False
        self._problems_logged: set[str] = set()

    def _last_success_of(self, cluster: str) -> Callable[[], float | None]:
        def last_success() -> float | None:
            status = self.discovery.status.get(cluster)
            return status.last_success_at if status is not None else None

        return last_success

    # -- discovery -> model -> cache ----------------------------------------------------------

    def publish(self, views: list[ClusterState]) -> None:
        """A new view of ECS: rebuild the mesh and let the cache wake the streams if it changed."""
        mesh = build_mesh(views, self.settings.label_prefix, self.settings.limits)
        self._log_problems(mesh)
        if self.cache.set_mesh(mesh):
            endpoints = [e for s in mesh.services for e in s.endpoints]
            log.info(
                "mesh.updated",
                revision=self.cache.revision,
                services=len(mesh.services),
                endpoints=len(endpoints),
                problems=len(mesh.problems),
            )
            self.metrics.services.set(len(mesh.services))
            for health_state in EndpointHealth:
                self.metrics.endpoints.labels(health=health_state.value).set(sum(1 for e in endpoints if e.health is health_state))
            self.metrics.services_with_errors.set(len({p.service for p in mesh.problems if p.severity == "error"}))
            counts = Counter((p.kind, p.severity) for p in mesh.problems)
            for kind in ProblemKind:
                for severity in ("error", "warning"):
                    self.metrics.label_problems.labels(kind=kind.value, severity=severity).set(counts[(kind, severity)])
            self.telemetry.mesh_updated(self.cache.revision, len(mesh.services), len(endpoints), len(mesh.problems))

    def _on_sync(self, status: ClusterSyncStatus, error: Exception | None) -> None:
        for operation, count in (status.last_api_calls or {}).items():
            if error is None:
                self.metrics.ecs_calls.labels(cluster=status.cluster, operation=operation).inc(count)
        if error is None:
            if status.last_duration_seconds is not None:
                self.metrics.sync_duration.labels(cluster=status.cluster).observe(status.last_duration_seconds)
            return
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        self.metrics.ecs_errors.labels(cluster=status.cluster, error=code).inc()
        if "Throttl" in code or code == "RequestLimitExceeded":
            self.metrics.ecs_throttles.labels(cluster=status.cluster).inc()
        self.events.publish(Event(kind="sync_failed", message=status.last_error or "", details={"cluster": status.cluster}))

    def _log_problems(self, mesh: Mesh) -> None:
        current = {problem.message: problem for problem in mesh.problems}
        for message, problem in current.items():
            if message not in self._problems_logged:
                log.log(
                    40 if problem.severity == "error" else 30,
                    "labels.invalid" if problem.severity == "error" else "labels.warning",
                    service=problem.service,
                    task_definition=problem.task_definition,
                    container=problem.container,
                    label=problem.label,
                    value=problem.value,
                    kind=problem.kind.value,
                    error=message,
                )
        for message in self._problems_logged - set(current):
            log.info("labels.problem_resolved", error=message)
        self._problems_logged = set(current)

    def _certificates_changed(self, certificates: CertificateSet) -> None:
        for certificate in certificates.certificates:
            self.metrics.certificate_expiry.labels(certificate=certificate.name).set(certificate.not_after)
        if self.cache.set_edge(replace(self.cache.edge, certificates=certificates)):
            log.info("edge.certificates_published", certificates=[c.name for c in certificates.certificates], revision=self.cache.revision)

    # -- servers ----------------------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        if self.certificates is not None:
            # Fails here, before anything listens, when a configured certificate cannot be served.
            self._certificates_changed(await asyncio.to_thread(self.certificates.load))
            self._tasks.append(asyncio.create_task(self.certificates.run(), name="certificates"))
        elif not s.edge_plaintext:
            log.warning("edge.plaintext", hint="no --edge-certificate given: edge listeners serve plaintext; pass --edge-plaintext to say it is on purpose")
        xds = grpc.aio.server(options=xds_server_options(s.xds_max_pending_streams))
        backoff = NackBackoff(first=s.xds_nack_retry_seconds, maximum=s.xds_nack_retry_max_seconds)
        xds.add_generic_rpc_handlers(DiscoveryServer(self.cache, self.registry, self.telemetry, backoff).handlers())
        health_pb2_grpc.add_HealthServicer_to_server(self._health, xds)
        if s.xds_tls_cert and s.xds_tls_key:
            self.xds_port = xds.add_secure_port(
                f"{s.xds_address}:{s.xds_port}", server_credentials(s.xds_tls_cert, s.xds_tls_key, s.xds_tls_client_ca)
            )
        else:
            self.xds_port = xds.add_insecure_port(f"{s.xds_address}:{s.xds_port}")

        admin_service = AdminService(self.cache, self.registry, self.discovery, self.events, self.discovery.first_view)
        admin, self.admin_port, self._admin_health = build_admin_server(
            admin_service,
            s.admin_address,
            s.admin_port,
            token=s.admin_token.get_secret_value() if s.admin_token else None,
            tls_cert=s.admin_tls_cert,
            tls_key=s.admin_tls_key,
            tls_client_ca=s.admin_tls_client_ca,
            csds=ClientStatusService(self.registry),
        )
        await xds.start()
        await admin.start()
        self._xds_server, self._admin_server = xds, admin
        if s.metrics_port is not None:
            self._metrics_server, self.metrics_port = self.metrics.serve(s.metrics_address, s.metrics_port)
        if s.dashboard_port is not None:
            token = s.admin_token.get_secret_value() if s.admin_token else None
            if not is_loopback(s.dashboard_address) and not token:
                raise SettingsError(
                    f"dashboard address {s.dashboard_address} is not loopback: set an admin token (CONTROLPLANE_ADMIN_TOKEN), "
                    "which the dashboard then requires"
                )
            self._dashboard = Dashboard(admin_service, self.events, token=token)
            self.dashboard_port = await self._dashboard.start(s.dashboard_address, s.dashboard_port)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info(
            "controlplane.listening",
            xds=f"{s.xds_address}:{self.xds_port}",
            admin=f"{s.admin_address}:{self.admin_port}",
            metrics=f"{s.metrics_address}:{self.metrics_port}" if self.metrics_port else None,
            dashboard=f"http://{s.dashboard_address}:{self.dashboard_port}/" if self.dashboard_port else None,
            clusters=s.clusters,
            discovery=self.discovery.mode,
        )
        self._tasks.append(asyncio.create_task(self.discovery.run(), name="discovery"))
        self._tasks.append(asyncio.create_task(self._serving_when_ready(), name="readiness"))
        self._started = True

    async def _serving_when_ready(self) -> None:
        await self.discovery.first_view.wait()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("controlplane.ready")

    async def _set_health(self, status: int) -> None:
        for servicer in (self._health, self._admin_health):
            if servicer is not None:
                await servicer.set("", status)

    async def stop(self, grace: float = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        for server in (self._xds_server, self._admin_server):
            if server is not None:
                await server.stop(grace)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._dashboard is not None:
            await self._dashboard.stop()
        if self._started:
            log.info("controlplane.stopped")
