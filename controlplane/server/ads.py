"""The xDS services over grpc.aio: ADS (state of the world and Delta) and the per-type services
(CDS, EDS, LDS, RDS, SDS, each SotW and Delta). Responses are pre-encoded bytes (see wire.py)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Callable

import grpc
import structlog
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from controlplane.cache.store import SnapshotCache
from controlplane.errors import NodeError
from controlplane.proxy.roles import GrpcClientRole, ProxyRole, role_from_metadata
from controlplane.server.delta import DeltaStream
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.registry import ProxyRegistry
from controlplane.server.stream import SotwStream
from controlplane.xds.wire import identity

log = structlog.get_logger()

# (gRPC service, SotW method, Delta method); None type = ADS (every type, ordered).
SERVICES: tuple[tuple[str, str, str], ...] = (
    ("envoy.service.discovery.v3.AggregatedDiscoveryService", "StreamAggregatedResources", "DeltaAggregatedResources"),
    ("envoy.service.cluster.v3.ClusterDiscoveryService", "StreamClusters", "DeltaClusters"),
    ("envoy.service.endpoint.v3.EndpointDiscoveryService", "StreamEndpoints", "DeltaEndpoints"),
    ("envoy.service.listener.v3.ListenerDiscoveryService", "StreamListeners", "DeltaListeners"),
    ("envoy.service.route.v3.RouteDiscoveryService", "StreamRoutes", "DeltaRoutes"),
    ("envoy.service.secret.v3.SecretDiscoveryService", "StreamSecrets", "DeltaSecrets"),
)


def orders(role: ProxyRole) -> bool:
    """Whether we hold LDS/RDS until clusters are warm. gRPC's xDS client asks LDS, RDS, CDS, EDS
    in that order and resolves each step before the next: holding LDS back would deadlock it."""
    return not isinstance(role, GrpcClientRole)


def node_role(node: Any) -> ProxyRole:
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}
    return role_from_metadata(node.id, metadata)


class DiscoveryServer:
    """Serves every connected proxy from the shared SnapshotCache."""

    def __init__(self, cache: SnapshotCache, registry: ProxyRegistry, observer: StreamObserver | None = None) -> None:
        self._cache = cache
        self._registry = registry
        self._observer: StreamObserver = observer or NoObserver()
        # Nonces only need to be unique per stream; a per-process prefix makes logs unambiguous.
        self._nonce_prefix = os.urandom(3).hex() + "-"

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        handlers = []
        for service, sotw, delta in SERVICES:
            ordered = service.endswith("AggregatedDiscoveryService")
            handlers.append(
                grpc.method_handlers_generic_handler(
                    service,
                    {
                        sotw: grpc.stream_stream_rpc_method_handler(
                            self._sotw_behaviour(ordered),
                            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                            response_serializer=identity,
                        ),
                        delta: grpc.stream_stream_rpc_method_handler(
                            self._delta_behaviour(ordered),
                            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                            response_serializer=identity,
                        ),
                    },
                )
            )
        return handlers

    def _sotw_behaviour(self, ordered: bool) -> Callable[..., AsyncIterator[bytes]]:
        # grpc.aio recognises streaming handlers by inspect.isasyncgenfunction: this must be one.
        async def behaviour(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            make = lambda record, role: SotwStream(record, self._nonce_prefix, self._observer, ordered and orders(role))  # noqa: E731
            async for payload in self._serve(request_iterator, context, make):
                yield payload

        return behaviour

    def _delta_behaviour(self, ordered: bool) -> Callable[..., AsyncIterator[bytes]]:
        async def behaviour(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            make = lambda record, role: DeltaStream(record, self._nonce_prefix, self._observer, ordered and orders(role))  # noqa: E731
            async for payload in self._serve(request_iterator, context, make):
                yield payload

        return behaviour

    async def _serve(
        self,
        request_iterator: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        make_stream: Callable[[Any, ProxyRole], SotwStream | DeltaStream],
    ) -> AsyncIterator[bytes]:
        requests: asyncio.Queue[Any] = asyncio.Queue()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await requests.put(request)
            except asyncio.CancelledError:
                pass
            except Exception as error:  # noqa: BLE001 - the stream ends either way; say why
                log.warning("xds.stream_read_failed", peer=context.peer(), error=f"{type(error).__name__}: {error}")
            finally:
                requests.put_nowait(None)

        reader = asyncio.create_task(read())
        first = await requests.get()
        if first is None:
            reader.cancel()
            return
        try:
            role = node_role(first.node)
        except NodeError as error:
            log.warning("xds.node_rejected", node_id=first.node.id, error=str(error))
            reader.cancel()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return
        metadata = dict(context.invocation_metadata() or ())
        record = self._registry.open(
            node_id=first.node.id,
            node_cluster=first.node.cluster,
            role=role.key,
            peer=context.peer(),
            user_agent=str(metadata.get("user-agent", first.node.user_agent_name)),
        )
        stream = make_stream(record, role)
        self._observer.connected(record)
        bound = log.bind(node_id=record.node_id, stream=record.stream_id, role=role.key)
        bound.info("xds.stream_opened", peer=record.peer, protocol=type(stream).__name__)
        get_request: asyncio.Future[Any] | None = None
        changed: asyncio.Future[int] | None = None
        try:
            # Nothing is served before the first complete view of ECS.
            if self._cache.snapshot(role) is None:
                bound.info("xds.waiting_for_first_view")
            seen = self._cache.revision
            for response in stream.on_request(first, self._cache.snapshot(role)):
                yield response.to_bytes()
            get_request = asyncio.ensure_future(requests.get())
            changed = asyncio.ensure_future(self._cache.wait_changed(seen))
            while True:
                await asyncio.wait({get_request, changed}, return_when=asyncio.FIRST_COMPLETED)
                responses: list[Any] = []
                if get_request.done():
                    request = get_request.result()
                    if request is None:
                        return
                    get_request = asyncio.ensure_future(requests.get())
                    responses.extend(stream.on_request(request, self._cache.snapshot(role)))
                if changed.done():
                    # A client that is behind gets the latest state, not every intermediate one.
                    seen = changed.result()
                    changed = asyncio.ensure_future(self._cache.wait_changed(seen))
                    responses.extend(stream.push(self._cache.snapshot(role)))
                for response in responses:
                    yield response.to_bytes()
        finally:
            for future in (get_request, changed):
                if future is not None:
                    future.cancel()
            reader.cancel()
            self._registry.close(record)
            self._observer.disconnected(record)
            bound.info("xds.stream_closed")
