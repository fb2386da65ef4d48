"""The xDS services over grpc.aio: ADS (state of the world and Delta) and the per-type services
(CDS, EDS, LDS, RDS, SDS, each SotW and Delta). Responses are pre-encoded bytes (see wire.py)."""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
import structlog
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import json_format

from controlplane.cache.store import SnapshotCache
from controlplane.errors import NodeError, RoleLimitError
from controlplane.proxy.roles import GrpcClientRole, ProxyRole, role_from_metadata
from controlplane.server.authorize import AccessDenied, StreamAuthorizer
from controlplane.server.delta import DeltaStream
from controlplane.server.drain import StreamDrain
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.outbox import Outbox
from controlplane.server.registry import ProxyRegistry
from controlplane.server.stream import SotwStream
from controlplane.server.subscriptions import NackBackoff, SubscriptionStream
from controlplane.xds.wire import identity

log = structlog.get_logger()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

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

    def __init__(
        self,
        cache: SnapshotCache,
        registry: ProxyRegistry,
        observer: StreamObserver | None = None,
        backoff: NackBackoff | None = None,
        authorizer: StreamAuthorizer | None = None,
        drain: StreamDrain | None = None,
    ) -> None:
        self._cache = cache
        self._registry = registry
        self._observer: StreamObserver = observer or NoObserver()
        self._backoff = backoff or NackBackoff()
        self._authorizer = authorizer or StreamAuthorizer()
        self.drain = StreamDrain() if drain is None else drain  # not `or`: an idle drain is empty, hence falsy
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

    def _sotw_behaviour(self, ordered: bool) -> Callable[..., Awaitable[None]]:
        # A coroutine handler (not an async generator): it writes with `context.write`, so a push
        # costs one wake-up of the stream's writer, and the reader answers ACKs without waking it.
        async def behaviour(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
            make = lambda record, role: SotwStream(record, self._nonce_prefix, self._observer, ordered and orders(role), self._backoff)  # noqa: E731
            await self._serve(context, make)

        return behaviour

    def _delta_behaviour(self, ordered: bool) -> Callable[..., Awaitable[None]]:
        async def behaviour(request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
            make = lambda record, role: DeltaStream(record, self._nonce_prefix, self._observer, ordered and orders(role), self._backoff)  # noqa: E731
            await self._serve(context, make)

        return behaviour

    async def _serve(
        self,
        context: grpc.aio.ServicerContext,
        make_stream: Callable[[Any, ProxyRole], SubscriptionStream[Any, Any]],
    ) -> None:
        try:
            first = await context.read()
        except Exception as error:  # noqa: BLE001 - the stream ends either way; say why
            log.warning("xds.stream_read_failed", peer=context.peer(), error=f"{type(error).__name__}: {error}")
            return
        if first is grpc.aio.EOF:
            return
        try:
            role = node_role(first.node)
        except NodeError as error:
            log.warning("xds.node_rejected", node_id=first.node.id, error=str(error))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
            return
        if self.drain.draining:
            # Another replica serves the same bytes: the proxy reconnects there (an NLB or its
            # bootstrap's other addresses take it elsewhere: this replica no longer listens).
            log.debug("xds.stream_refused_draining", node_id=first.node.id, peer=context.peer())
            self._observer.refused(first.node.id, "draining")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this control plane replica is draining: connect to another one")
            return
        # Authentication and identity (server/authorize.py): may this proxy claim this role?
        try:
            identity = self._authorizer.admit(context, first.node.id, role)
        except AccessDenied as error:
            self._observer.refused(first.node.id, error.reason)
            await context.abort(error.code, str(error))
            return
        outbox = Outbox()
        loop = asyncio.get_running_loop()
        on_other_loop = lambda: _running_loop() is not loop  # noqa: E731 - a cache published from elsewhere (tests)
        pushes: list[Callable[[], None]] = [outbox.changed]  # until the stream's state machine exists

        def notify() -> None:
            pushes[0]()

        try:
            self._cache.acquire(role, notify)
        except RoleLimitError as error:
            log.warning("xds.role_limit_reached", node_id=first.node.id, role=role.key, peer=context.peer(), limit=self._cache.max_roles)
            self._observer.refused(first.node.id, "role_limit")
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"node '{first.node.id}': {error}")
            return
        metadata = dict(context.invocation_metadata() or ())
        record = self._registry.open(
            node_id=first.node.id,
            node_cluster=first.node.cluster,
            role=role.key,
            peer=context.peer(),
            user_agent=str(metadata.get("user-agent", first.node.user_agent_name)),
            identity=identity.name,
        )
        stream = make_stream(record, role)
        self._observer.connected(record)
        bound = log.bind(node_id=record.node_id, stream=record.stream_id, role=role.key, identity=identity.name or None)
        bound.info("xds.stream_opened", peer=record.peer, protocol=type(stream).__name__)
        drained: list[bool] = []
        failed: list[str] = []
        cache = self._cache

        def answer(request: Any) -> None:
            """The state machine's answer to one request, queued for the writer (an ACK: usually none)."""
            outbox.send([response.to_bytes() for response in stream.on_request(request, cache.snapshot(role))])
            outbox.retry_at(stream.next_retry_at())  # wake then to offer NACKed resources again

        async def read() -> None:
            try:
                while (request := await context.read()) is not grpc.aio.EOF:
                    answer(request)
            except asyncio.CancelledError:
                pass
            except Exception as error:  # noqa: BLE001 - the stream ends either way; say why
                log.warning("xds.stream_read_failed", peer=context.peer(), error=f"{type(error).__name__}: {error}")
            finally:
                outbox.end()

        def push() -> None:
            outbox.send([response.to_bytes() for response in stream.push(cache.snapshot(role))])
            outbox.retry_at(stream.next_retry_at())

        def changed() -> None:
            """The role's snapshot changed. With nothing waiting to be written, the responses are made
            here, in the cache's notification, so that the writers of every stream a change reaches
            wake one after the other with bytes ready: grpc then writes them to each connection in
            a few large writes instead of one per stream (measured: bench/fleet.py). A stream still
            writing takes the change later, and only its latest state."""
            if outbox.pending or on_other_loop():
                outbox.changed()
                return
            try:
                push()
            except Exception as error:  # noqa: BLE001 - a failing stream must not fail the publication
                log.error("xds.push_failed", node_id=record.node_id, stream=record.stream_id, error=f"{type(error).__name__}: {error}")
                failed.append(f"{type(error).__name__}: {error}")
                outbox.end()

        def close_for_drain() -> None:
            drained.append(True)
            outbox.end()

        pushes[0] = changed
        self.drain.register(record.stream_id, close_for_drain)
        reader: asyncio.Task[None] | None = None
        try:
            # Nothing is served before the first complete view of ECS.
            if cache.snapshot(role) is None:
                bound.info("xds.waiting_for_first_view")
            answer(first)
            reader = asyncio.create_task(read())
            while True:
                await outbox.wait()
                if outbox.ended:
                    break
                if outbox.take_push():
                    push()
                for payload in outbox.take():
                    await context.write(payload)
            if failed:
                # The proxy reconnects and starts afresh (grpc clients and Envoy retry INTERNAL).
                await context.abort(grpc.StatusCode.INTERNAL, f"the control plane failed to answer this stream: {failed[0]}")
            if drained:
                bound.debug("xds.stream_drained")
                # UNAVAILABLE: the status gRPC clients and Envoy retry on, after their backoff.
                await context.abort(grpc.StatusCode.UNAVAILABLE, "this control plane replica is draining: reconnect to another one")
        finally:
            self.drain.unregister(record.stream_id)
            outbox.close()
            if reader is not None:
                reader.cancel()
            cache.release(role, notify)
            self._registry.close(record)
            self._observer.disconnected(record)
            bound.info("xds.stream_closed")
