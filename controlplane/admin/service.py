"""The admin gRPC service (controlplane.admin.v1.Admin)."""

from __future__ import annotations

from typing import AsyncIterator

import grpc

from controlplane import __version__
from controlplane.admin import views
from controlplane.admin.readiness import Readiness
from controlplane.cache.store import SnapshotCache
from controlplane.discovery.request_budget import RequestBudget
from controlplane.discovery.watch import ClusterWatch
from controlplane.admin.event_bus import EventBus
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.server.drain import StreamDrain
from controlplane.server.registry import ProxyRegistry


class AdminService(admin_pb2_grpc.AdminServicer):
    """Answers from the cache, the registry and discovery's status; never changes them."""

    def __init__(
        self,
        cache: SnapshotCache,
        registry: ProxyRegistry,
        discovery: ClusterWatch,
        events: EventBus,
        readiness: Readiness,
        *,
        ecs_budget: RequestBudget | None = None,
        drain: StreamDrain | None = None,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._discovery = discovery
        self._events = events
        self._readiness = readiness
        self._ecs_budget = ecs_budget
        self._drain = drain

    def list_services(self) -> api.ListServicesResponse:
        """Every service the labels declare (serving or disabled), with problems not tied to one service."""
        mesh = self._cache.mesh
        if mesh is None:
            return api.ListServicesResponse()
        served = {s.name for s in mesh.services}
        return api.ListServicesResponse(
            services=views.services(mesh),
            problems=[views.problem(p) for p in mesh.problems if p.service not in served],
            mesh_revision=self._cache.revision,
        )

    def list_proxies(self) -> api.ListProxiesResponse:
        return api.ListProxiesResponse(proxies=[views.proxy(record) for record in self._registry.proxies()])

    def status(self) -> api.Status:
        mesh = self._cache.mesh
        clusters = []
        for cluster in self._discovery.clusters:
            view = self._discovery.view(cluster)
            clusters.append(views.cluster_status(self._discovery.status[cluster], len(view.tasks) if view else 0))
        return api.Status(
            version=__version__,
            ready=self._readiness.ready(),
            mesh_revision=self._cache.revision,
            services=len(mesh.services) if mesh else 0,
            endpoints=sum(len(s.endpoints) for s in mesh.services) if mesh else 0,
            proxies=len(self._registry.proxies()),
            problems=len(mesh.problems) if mesh else 0,
            clusters=clusters,
            **views.readiness(self._readiness),
            ecs_requests=views.ecs_requests(self._ecs_budget) if self._ecs_budget is not None else None,
            draining=self._drain is not None and self._drain.draining,
        )

    async def ListServices(self, request: api.ListServicesRequest, context: grpc.aio.ServicerContext) -> api.ListServicesResponse:  # noqa: N802
        return self.list_services()

    async def GetService(self, request: api.GetServiceRequest, context: grpc.aio.ServicerContext) -> api.Service:  # noqa: N802
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name is required, e.g. {\"name\": \"routeguide\"}")
        mesh = self._cache.mesh
        if mesh is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no view of ECS yet: discovery has not read every cluster once")
        assert mesh is not None
        for found in views.services(mesh):
            if found.name == request.name:
                return found
        known = ", ".join(s.name for s in mesh.services) or "none"
        await context.abort(grpc.StatusCode.NOT_FOUND, f"service {request.name!r} is not declared by any task definition (known: {known})")
        raise AssertionError("unreachable")

    async def ListProxies(self, request: api.ListProxiesRequest, context: grpc.aio.ServicerContext) -> api.ListProxiesResponse:  # noqa: N802
        return self.list_proxies()

    async def GetProxyConfig(self, request: api.GetProxyConfigRequest, context: grpc.aio.ServicerContext) -> api.ProxyConfig:  # noqa: N802
        if not request.node_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node_id is required, e.g. {\"node_id\": \"edge-1\"}")
        records = self._registry.by_node(request.node_id)
        if request.stream_id:
            # Two streams may claim one node id (a restarted Envoy, or an impostor): pick one.
            records = [record for record in records if record.stream_id == request.stream_id]
        if not records:
            connected = ", ".join(sorted({r.node_id for r in self._registry.proxies()})) or "none"
            stream = f" on stream {request.stream_id}" if request.stream_id else ""
            await context.abort(grpc.StatusCode.NOT_FOUND, f"node {request.node_id!r} is not connected{stream} (connected: {connected})")
        return views.proxy_config(records[-1])

    async def GetStatus(self, request: api.GetStatusRequest, context: grpc.aio.ServicerContext) -> api.Status:  # noqa: N802
        return self.status()

    async def WatchEvents(self, request: api.WatchEventsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[api.Event]:  # noqa: N802
        kinds = set(request.kinds)
        async for event in self._events.subscribe():
            if kinds and event.kind not in kinds:
                continue
            yield api.Event(
                at=views.timestamp(event.at),
                kind=event.kind,
                node_id=event.node_id,
                type=event.type,
                version=event.version,
                message=event.message,
                details=dict(event.details),
            )
