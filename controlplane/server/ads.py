"""The Aggregated Discovery Service (state-of-the-world) over grpc.aio."""

from __future__ import annotations

import asyncio
import os
from typing import AsyncIterator

import grpc
import structlog
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format

from controlplane.cache.store import SnapshotCache
from controlplane.errors import NodeError
from controlplane.roles import ProxyRole, role_from_metadata
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.registry import ProxyRegistry
from controlplane.server.stream import SotwStream

log = structlog.get_logger()


def node_role(node: object) -> ProxyRole:
    metadata = json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}  # type: ignore[attr-defined]
    return role_from_metadata(node.id, metadata)  # type: ignore[attr-defined]


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Serves every connected proxy from the shared SnapshotCache."""

    def __init__(self, cache: SnapshotCache, registry: ProxyRegistry, observer: StreamObserver | None = None) -> None:
        self._cache = cache
        self._registry = registry
        self._observer: StreamObserver = observer or NoObserver()
        # Nonces only need to be unique per stream; a per-process prefix makes logs unambiguous.
        self._nonce_prefix = os.urandom(3).hex() + "-"

    async def StreamAggregatedResources(  # noqa: N802 (gRPC method name)
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for request in request_iterator:
                    await requests.put(request)
            finally:
                await requests.put(None)

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
        stream = SotwStream(record, self._nonce_prefix, self._observer)
        self._observer.connected(record)
        bound = log.bind(node_id=record.node_id, stream=record.stream_id, role=role.key)
        bound.info("xds.stream_opened", peer=record.peer)
        try:
            # Nothing is served before the first complete view of ECS.
            if self._cache.snapshot(role) is None:
                bound.info("xds.waiting_for_first_view")
            seen = self._cache.revision
            for response in stream.on_request(first, self._cache.snapshot(role)):
                yield response
            get_request = asyncio.ensure_future(requests.get())
            changed = asyncio.ensure_future(self._cache.wait_changed(seen))
            try:
                while True:
                    await asyncio.wait({get_request, changed}, return_when=asyncio.FIRST_COMPLETED)
                    responses = []
                    if get_request.done():
                        request = get_request.result()
                        if request is None:
                            return
                        get_request = asyncio.ensure_future(requests.get())
                        responses.extend(stream.on_request(request, self._cache.snapshot(role)))
                    if changed.done():
                        seen = changed.result()
                        changed = asyncio.ensure_future(self._cache.wait_changed(seen))
                        responses.extend(stream.push(self._cache.snapshot(role)))
                    for response in responses:
                        yield response
            finally:
                get_request.cancel()
                changed.cancel()
        finally:
            reader.cancel()
            self._registry.close(record)
            self._observer.disconnected(record)
            bound.info("xds.stream_closed")
