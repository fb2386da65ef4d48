"""The long-running control plane: discovery -> model -> translate -> cache -> serve."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import grpc
import structlog
from botocore.config import Config
from envoy.service.discovery.v3 import ads_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from controlplane.cache.store import SnapshotCache
from controlplane.discovery.poller import PollingDiscovery
from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh
from controlplane.server.ads import AggregatedDiscoveryService
from controlplane.server.registry import ProxyRegistry
from controlplane.settings import Settings

log = structlog.get_logger()


def aws_clients(settings: Settings) -> tuple[Any, Any]:
    """boto3 clients; AWS_ENDPOINT_URL_ECS / _EC2 point them at a local ECS with no special code."""
    config = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
    session = boto3.session.Session(region_name=settings.region)
    return session.client("ecs", config=config), session.client("ec2", config=config)


class ControlPlane:
    """Wires the stages together; start() and stop() make it usable in-process by tests."""

    def __init__(self, settings: Settings, ecs: Any | None = None, ec2: Any | None = None) -> None:
        self.settings = settings
        if ecs is None or ec2 is None:
            ecs, ec2 = aws_clients(settings)
        self.cache = SnapshotCache()
        self.registry = ProxyRegistry()
        self.discovery = PollingDiscovery(
            settings.clusters, ecs, ec2, self.publish, interval=settings.poll_interval_seconds
        )
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
        self._tasks: list[asyncio.Task[None]] = []
        self.xds_port: int | None = None
        self._problems_logged: set[str] = set()

    def publish(self, views: list[ClusterState]) -> None:
        """A new view of ECS: rebuild the mesh and let the cache wake the streams if it changed."""
        mesh = build_mesh(views, self.settings.label_prefix)
        self._log_problems(mesh)
        if self.cache.set_mesh(mesh):
            log.info(
                "mesh.updated",
                revision=self.cache.revision,
                services=len(mesh.services),
                endpoints=sum(len(s.endpoints) for s in mesh.services),
                problems=len(mesh.problems),
            )

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
                    error=message,
                )
        for message in self._problems_logged - set(current):
            log.info("labels.problem_resolved", error=message)
        self._problems_logged = set(current)

    async def start(self) -> None:
        server = grpc.aio.server(
            options=[
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ]
        )
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            AggregatedDiscoveryService(self.cache, self.registry), server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        self.xds_port = server.add_insecure_port(f"{self.settings.xds_address}:{self.settings.xds_port}")
        await server.start()
        self._server = server
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        log.info("xds.listening", address=self.settings.xds_address, port=self.xds_port, clusters=self.settings.clusters)
        self._tasks.append(asyncio.create_task(self.discovery.run(), name="discovery"))
        self._tasks.append(asyncio.create_task(self._serving_when_ready(), name="readiness"))

    async def _serving_when_ready(self) -> None:
        await self.discovery.first_view.wait()
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log.info("controlplane.ready")

    async def _set_health(self, status: int) -> None:
        result = self._health.set("", status)
        if asyncio.iscoroutine(result):
            await result

    async def stop(self, grace: float = 1.0) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._server is not None:
            await self._server.stop(grace)
        log.info("controlplane.stopped")

    async def run_forever(self) -> None:
        await self.start()
        assert self._server is not None
        await self._server.wait_for_termination()
