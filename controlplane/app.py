"""The long-running control plane: discovery -> model -> translate -> cache -> serve."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Callable

import grpc
import structlog
from botocore.config import Config
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dataclasses import replace

from controlplane.admin.csds import ClientStatusService
from controlplane.admin.dashboard import Dashboard
from controlplane.admin.readiness import Readiness
from controlplane.admin.server import build_admin_server, server_credentials
from controlplane.admin.service import AdminService
from controlplane.cache.store import SnapshotCache
from controlplane.discovery.aws_session import lean_session
from controlplane.discovery.cadence import Cadence
from controlplane.discovery.filters import TaskFilter
from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.request_budget import RequestBudget
from controlplane.discovery.sqs_events import SqsEventSource
from controlplane.discovery.state import ClusterState
from controlplane.discovery.status import ClusterSyncStatus
from controlplane.discovery.watch import ClusterWatch
from controlplane.admin.event_bus import Event, EventBus
from controlplane.admin.metrics import Metrics
from controlplane.model.delta import MeshDelta
from controlplane.model.incremental import MeshBuilder
from controlplane.model.label_cache import TaskDefinitionLabels
from controlplane.model.lifecycle import HealthPolicy
from controlplane.model.mesh import EndpointHealth, Mesh, ProblemKind
from controlplane.server.ads import DiscoveryServer
from controlplane.server.authorize import StreamAuthorizer
from controlplane.server.drain import StreamDrain
from controlplane.server.exposure import xds_exposure_gaps
from controlplane.server.identity import SanScheme
from controlplane.server.listen import SERVER_OPTIONS, bind, ensure_free
from controlplane.server.options import xds_server_options
from controlplane.server.registry import ProxyRegistry
from controlplane.server.subscriptions import NackBackoff
from controlplane.server.listen import is_loopback
from controlplane.server.tokens import TokenBook
from controlplane.heap import settle_heap
from controlplane.errors import SettingsError
from controlplane.secrets.certificate import CertificateSet
from controlplane.secrets.sources import CaFile, CertificateSource, file_source, secret_source
from controlplane.secrets.watcher import CertificateWatcher
from controlplane.settings import Settings
from controlplane.translate.patch import check_listener_patch, memoised_check
from controlplane.translate.edge_options import AccessLog, AccessLogFormat, EdgeLimits, EdgeOptions, GrpcStats, TlsPolicy
from controlplane.admin.telemetry import Telemetry
from controlplane.supervision import Supervisor

ModelFactory = Callable[..., MeshBuilder]  # MeshBuilder, or a stand-in a test injects

log = structlog.get_logger()


def aws_clients(settings: Settings) -> tuple[Any, Any]:
    """boto3 clients; AWS_ENDPOINT_URL_ECS / _EC2 point them at a local ECS with no special code."""
    # Adaptive mode rate-limits the client itself after throttles. A failed read is retried at the
    # next sync anyway (the last good view keeps serving), so attempts stay few.
    config = Config(retries={"mode": "adaptive", "max_attempts": settings.aws_max_attempts}, connect_timeout=5, read_timeout=20)
    session = lean_session(settings.region)
    return session.client("ecs", config=config), session.client("ec2", config=config)


def aws_discovery_clients(settings: Settings) -> tuple[Any, Any]:
    """SQS (long polls: the read timeout outlasts the 20 s wait) and SSM (ECS Anywhere addresses)."""
    session = lean_session(settings.region)
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
        listener_patch=check_listener_patch(s.edge_listener_patch.read_text()) if s.edge_listener_patch else None,
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
        session = lean_session(s.region)
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
        *,
        model: ModelFactory = MeshBuilder,
    ) -> None:
        self.settings = settings
        self._model_factory = model
        if ecs is None or ec2 is None:
            ecs, ec2 = aws_clients(settings)
        if sqs is None or ssm is None:
            default_sqs, default_ssm = aws_discovery_clients(settings)
            sqs, ssm = sqs or default_sqs, ssm or default_ssm
        self.registry = ProxyRegistry()
        self.events = EventBus()
        self.metrics = Metrics()
        # Every ECS request of this replica (retries too) waits for this budget and is counted.
        self.ecs_budget = RequestBudget(settings.ecs_max_calls_per_second, settings.ecs_call_burst, on_request=self._ecs_request)
        if hasattr(ecs, "meta"):
            self.ecs_budget.attach(ecs)
        self.metrics.ecs_request_limit.set(settings.ecs_max_calls_per_second)
        self.stream_drain = StreamDrain()
        self.cache = SnapshotCache(edge=edge_options(settings), max_roles=settings.xds_max_roles)
        self._resource_check = memoised_check(self.cache.memo)
        self.certificates = certificate_watcher(settings, secretsmanager, self._certificates_changed, self.metrics)
        self.telemetry = Telemetry(self.metrics, self.events)
        self.metrics.track_cache(self.cache)
        self.health_policy = HealthPolicy(serve_unknown=settings.serve_unknown_health)
        self.model = self._new_model()
        self.discovery = ClusterWatch(
            settings.clusters,
            ClusterReader(
                ecs,
                ec2,
                ssm=ssm,
                task_filter=TaskFilter(services=settings.service_filter, families=settings.family_filter),
            ),
            self.publish,
            Cadence(
                poll_interval=settings.poll_interval_seconds,
                resync_interval=settings.resync_interval_seconds,
                deployment_poll_interval=settings.deployment_poll_interval_seconds,
                health_refresh=settings.health_refresh_seconds,
                health_refresh_steady=settings.health_refresh_steady_seconds,
                jitter=settings.resync_jitter,
            ),
            on_sync=self._on_sync,
            events=SqsEventSource(sqs, settings.events_queue_url) if settings.events_queue_url else None,
            discover_clusters=settings.discover_clusters,
            max_concurrency=settings.discovery_concurrency,
            trust_event_details=settings.events_trust_details,
            on_message=self._on_event_message,
        )
        for cluster in self.discovery.clusters:
            self.metrics.track_view_age(cluster, self._last_success_of(cluster))
        self.metrics.track_translation_cache(self.cache.memo.size_bytes)
        self.metrics.track_label_cache(self.model.labels)
        self.readiness = Readiness(
            settings.readiness_window_seconds,
            self.discovery.first_view,
            lambda: [status.last_success_at for status in self.discovery.status.values()],
        )
        self.supervisor = Supervisor(self.readiness, self.metrics, self.events)
        reader = self.discovery.reader
        for cache in reader.cache_sizes():
            self.metrics.discovery_cache_entries.labels(cache=cache).set_function(_cache_size(reader, cache))
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
        """A new view of ECS: update the mesh by what changed, and let the cache rebuild (and wake)
        only the roles the change reaches. Costs what the change touches, not the mesh's size.

        Never raises: a failure keeps the last good mesh served and is reported by the supervisor;
        discovery goes on, and the next change of the view tries again.
        """
        try:
            update = self.model.update(views)
            self._resource_check.hold(partial=not update.assembled)  # the patch checks this build used stay memoised
        except Exception as error:  # noqa: BLE001 - any bug or poison input: keep serving
            # The model may hold a view half applied: the next view is built afresh (labels stay parsed).
            self.model = self._new_model(self.model.labels)
            self.supervisor.failed("build", error, tasks=sum(len(view.tasks) for view in views))
            return
        try:
            self._publish_mesh(update.mesh, update.delta)
        except Exception as error:  # noqa: BLE001
            self.supervisor.failed("publish", error)
            return
        self.supervisor.succeeded("build", "publish")

    def _new_model(self, labels: TaskDefinitionLabels | None = None) -> MeshBuilder:
        s = self.settings
        return self._model_factory(
            s.label_prefix, s.limits, self.health_policy, services_from_port_names=s.services_from_port_names, host_rule=s.host_rule,
            labels=labels, resource_check=self._resource_check,
        )

    def _publish_mesh(self, mesh: Mesh, delta: MeshDelta) -> None:
        if delta.problems:
            self._log_problems(mesh)
        if self.cache.set_mesh(mesh, delta):
            by_health = self.model.endpoints_by_health()
            endpoints = sum(by_health.values())
            log.info(
                "mesh.updated",
                revision=self.cache.revision,
                services=len(mesh.services),
                endpoints=endpoints,
                problems=len(mesh.problems),
                changed_services=len(delta.services),
            )
            self.metrics.services.set(len(mesh.services))
            for health_state in EndpointHealth:
                self.metrics.endpoints.labels(health=health_state.value).set(by_health[health_state])
            if delta.problems:
                self.metrics.services_with_errors.set(len({p.service for p in mesh.problems if p.severity == "error"}))
                counts = Counter((p.kind, p.severity) for p in mesh.problems)
                for kind in ProblemKind:
                    for severity in ("error", "warning"):
                        self.metrics.label_problems.labels(kind=kind.value, severity=severity).set(counts[(kind, severity)])
            self.telemetry.mesh_updated(self.cache.revision, len(mesh.services), endpoints, len(mesh.problems))

    def _on_sync(self, status: ClusterSyncStatus, error: Exception | None) -> None:
        for operation, count in (status.last_api_calls or {}).items():
            if error is None:
                self.metrics.ecs_calls.labels(cluster=status.cluster, operation=operation).inc(count)
        if error is None:
            self.supervisor.succeeded("discovery")
            if status.last_duration_seconds is not None:
                self.metrics.sync_duration.labels(cluster=status.cluster).observe(status.last_duration_seconds)
            return
        code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
        self.metrics.ecs_errors.labels(cluster=status.cluster, error=code).inc()
        if "Throttl" in code or code == "RequestLimitExceeded":
            self.metrics.ecs_throttles.labels(cluster=status.cluster).inc()
        self.events.publish(Event(kind="sync_failed", message=status.last_error or "", details={"cluster": status.cluster}))

    def _ecs_request(self, operation: str, waited: float) -> None:
        self.metrics.ecs_requests.labels(operation=operation).inc()
        if waited:
            self.metrics.ecs_request_wait.inc(waited)

    def _on_event_message(self, outcome: str, detail_type: str | None) -> None:
        self.metrics.event_messages.labels(outcome=outcome).inc()
        if detail_type is not None:
            self.metrics.events_unhandled.labels(detail_type=detail_type).inc()

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
        authorizer = self._authorizer()
        tls = bool(s.xds_tls_cert and s.xds_tls_key)
        # Refused before anything starts or listens: exposure the operator did not ask for.
        gaps = xds_exposure_gaps(s.xds_address, tls=tls, authenticated=authorizer.required, insecure=s.xds_insecure)
        if s.metrics_port is not None:
            Metrics.check_exposure(s.metrics_address, insecure=s.metrics_insecure)
        if self.certificates is not None:
            # Fails here, before anything listens, when a configured certificate cannot be served.
            self._certificates_changed(await asyncio.to_thread(self.certificates.load))
            self._tasks.append(asyncio.create_task(self.certificates.run(), name="certificates"))
        elif not s.edge_plaintext:
            log.warning("edge.plaintext", hint="no --edge-certificate given: edge listeners serve plaintext; pass --edge-plaintext to say it is on purpose")
        options = xds_server_options(s.xds_max_pending_streams, s.xds_max_connection_age_seconds, s.xds_max_connection_age_grace_seconds)
        xds = grpc.aio.server(options=[*options, *SERVER_OPTIONS])
        backoff = NackBackoff(first=s.xds_nack_retry_seconds, maximum=s.xds_nack_retry_max_seconds)
        xds.add_generic_rpc_handlers(DiscoveryServer(self.cache, self.registry, self.telemetry, backoff, authorizer=authorizer, drain=self.stream_drain).handlers())
        health_pb2_grpc.add_HealthServicer_to_server(self._health, xds)
        credentials = server_credentials(s.xds_tls_cert, s.xds_tls_key, s.xds_tls_client_ca) if s.xds_tls_cert and s.xds_tls_key else None
        self.xds_port = bind(xds, "xDS", s.xds_address, s.xds_port, credentials)

        admin_token = s.resolved_admin_token()
        admin_service = AdminService(
            self.cache, self.registry, self.discovery, self.events, self.readiness, ecs_budget=self.ecs_budget, drain=self.stream_drain
        )
        admin, self.admin_port, self._admin_health = build_admin_server(
            admin_service,
            s.admin_address,
            s.admin_port,
            token=admin_token,
            tls_cert=s.admin_tls_cert,
            tls_key=s.admin_tls_key,
            tls_client_ca=s.admin_tls_client_ca,
            csds=ClientStatusService(self.registry),
        )
        if s.metrics_port is not None:
            self._metrics_server, self.metrics_port = self.metrics.serve(s.metrics_address, s.metrics_port, insecure=s.metrics_insecure)
        await xds.start()
        await admin.start()
        self._xds_server, self._admin_server = xds, admin
        if s.dashboard_port is not None:
            if not is_loopback(s.dashboard_address) and not admin_token:
                raise SettingsError(
                    f"dashboard address {s.dashboard_address} is not loopback: set an admin token (--admin-token-file, "
                    "CONTROLPLANE_ADMIN_TOKEN_FILE or CONTROLPLANE_ADMIN_TOKEN), which the dashboard then requires"
                )
            ensure_free("dashboard", s.dashboard_address, s.dashboard_port)
            self._dashboard = Dashboard(admin_service, self.events, token=admin_token)
            self.dashboard_port = await self._dashboard.start(s.dashboard_address, s.dashboard_port)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if gaps:
            # Loud on purpose, at every start: an operator must not forget this was switched on.
            log.warning(
                "xds.insecure",
                address=f"{s.xds_address}:{self.xds_port}",
                gaps=gaps,
                consequence="any client that reaches this address can read every service's endpoints and claim any proxy role",
            )
        log.info(
            "controlplane.listening",
            xds=f"{s.xds_address}:{self.xds_port}",
            admin=f"{s.admin_address}:{self.admin_port}",
            metrics=f"{s.metrics_address}:{self.metrics_port}" if self.metrics_port else None,
            dashboard=f"http://{s.dashboard_address}:{self.dashboard_port}/" if self.dashboard_port else None,
            clusters=s.clusters,
            discovery=self.discovery.mode,
        )
        self._tasks.append(asyncio.create_task(self.supervisor.keep_running("discovery", self.discovery.run), name="discovery"))
        self._tasks.append(asyncio.create_task(self._serving_when_ready(), name="readiness"))
        self._started = True

    def _authorizer(self) -> StreamAuthorizer:
        s = self.settings
        tokens = TokenBook.load(s.xds_tokens_file) if s.xds_tokens_file else None
        return StreamAuthorizer(
            certificates=s.xds_tls_client_ca is not None,
            sans=SanScheme(s.xds_san_template),
            tokens=tokens,
        )

    async def _serving_when_ready(self) -> None:
        await self.discovery.first_view.wait()
        # Start-up is over (heap.py: what is frozen, and why young collections are rarer).
        settle_heap()

        async def set_health(ready: bool) -> None:
            # A draining replica stays NOT_SERVING whatever its readiness does.
            serving = ready and not self.stream_drain.draining
            await self._set_health(health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING)

        await self.supervisor.watch_readiness(set_health)

    async def _set_health(self, status: int) -> None:
        for servicer in (self._health, self._admin_health):
            if servicer is not None:
                await servicer.set("", status)

    async def drain(self) -> None:
        """Leave the fleet gently (SIGTERM): health NOT_SERVING, no new xDS connection or stream
        (the listener closes and every connection gets a GOAWAY), and the open streams closed one
        by one over `xds_drain_seconds`, so their proxies reconnect to the other replicas a few at a
        time. Discovery keeps running meanwhile: streams still open keep getting changes."""
        if self._xds_server is None or self.stream_drain.draining:
            return
        seconds = self.settings.xds_drain_seconds
        log.info("controlplane.draining", streams=len(self.stream_drain), seconds=seconds)
        self.metrics.draining.set(1)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        # Streams still open when the grace ends are cancelled by grpc: the drain has closed them by then.
        stopping = asyncio.create_task(self._xds_server.stop(seconds + 5.0))
        closed = await self.stream_drain.drain(seconds)
        self.metrics.drained_streams.inc(closed)
        await stopping

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


def _cache_size(reader: ClusterReader, cache: str) -> Callable[[], float]:
    return lambda: float(reader.cache_sizes()[cache])
