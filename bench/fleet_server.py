"""The xDS server of the fleet benchmark: a synthetic mesh of S services x E endpoints, served by
the real DiscoveryServer; driven by commands on stdin, answers as JSON lines on stdout.

Commands: `stats` (RSS, CPU, streams), `change` (move one endpoint of s0000, which every sidecar
calls, wait until every stream ACKed it, and print the server's CPU for the rebuild and for the
pushes and ACKs, measured in this process around exactly that work)."""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import cProfile
import gc
import json
import resource
import sys
import time
from typing import Any, AsyncIterator, Sequence

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.cache.store import SnapshotCache
from controlplane.heap import settle_heap
from controlplane.logs import configure_logging
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service
from controlplane.cache.snapshot import Snapshot, version_of
from controlplane.server.ads import DiscoveryServer, node_role
from controlplane.admin.event_bus import EventBus
from controlplane.admin.metrics import Metrics
from controlplane.admin.telemetry import Telemetry
from controlplane.server.options import DEFAULT_MAX_PENDING_STREAMS, xds_server_options
from controlplane.server.registry import ProxyRecord, ProxyRegistry
from controlplane.xds.types import TypeUrl
from controlplane.xds.wire import SotwResponse, identity

UPSTREAMS = 3


def synthetic_mesh(services: int, endpoints: int, generation: int = 0) -> Mesh:
    built = []
    for i in range(services):
        name = f"s{i:04}"
        upstreams = tuple(sorted({"s0000", *(f"s{(i + k) % services:04}" for k in range(1, UPSTREAMS))} - {name}))
        eps = []
        for j in range(endpoints):
            n = i * endpoints + j
            address = f"127.{40 + n // 65000}.{(n // 250) % 260 % 256}.{n % 250 + 2}"
            if i == 0 and j == 0 and generation:
                address = f"127.39.{generation // 250 % 256}.{generation % 250 + 2}"
            eps.append(Endpoint(address, 50051, f"arn:aws:ecs:us-east-1:0:task/bench/{name}-{j}", "bench", f"{name}:1", EndpointHealth.HEALTHY))
        built.append(
            Service(
                name=name,
                protocol=Protocol.GRPC,
                route=RouteMatch(hosts=(f"{name}.local",), path_prefix="/"),
                container_port=50051,
                declared_by=f"{name}:1",
                endpoints=tuple(eps),
                upstreams=upstreams,
            )
        )
    return Mesh(services=tuple(built))


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class GcClock:
    """CPU time spent in the garbage collector (gc.callbacks around each collection)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections[info["generation"]] += 1


class NotifyClock:
    """CPU time the cache spends in the streams' change callbacks (a stream may make its responses
    there): that is push work, not the cache's rebuild."""

    def __init__(self) -> None:
        self.seconds = 0.0
        notify = SnapshotCache._notify

        def timed(live: Any) -> None:
            started = cpu_seconds()
            notify(live)
            self.seconds += cpu_seconds() - started

        SnapshotCache._notify = staticmethod(timed)  # type: ignore[method-assign]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class AckWatch(Telemetry):
    """The product's telemetry (metrics, event bus), which also counts, from the server's own hooks,
    the streams that ACKed EDS since a change (no polling)."""

    def __init__(self) -> None:
        super().__init__(Metrics(), EventBus())
        self.since = float("inf")
        self.streams_acked: set[int] = set()
        self.last_ack = 0.0
        self.target = 0
        self.done = asyncio.Event()

    def start(self, target: int) -> None:
        self.since, self.streams_acked, self.target, self.done = time.time(), set(), target, asyncio.Event()

    def acked(self, record: ProxyRecord, type_url: TypeUrl, version: str, sent_at: float | None) -> None:
        super().acked(record, type_url, version, sent_at)
        if type_url is TypeUrl.ENDPOINT and sent_at is not None and sent_at >= self.since and record.stream_id not in self.streams_acked:
            self.streams_acked.add(record.stream_id)
            self.last_ack = time.time()
            if len(self.streams_acked) >= self.target:
                self.done.set()


    def floor_acked(self, stream_id: int) -> None:
        if stream_id not in self.streams_acked:
            self.streams_acked.add(stream_id)
            self.last_ack = time.time()
            if len(self.streams_acked) >= self.target:
                self.done.set()


class _FloorAds:
    """What both floors share: the ADS method on pre-encoded bytes (identity serializer), the cache
    and the ACK watch. Subclasses define `_serve`."""

    def __init__(self, cache: SnapshotCache, watch: AckWatch) -> None:
        self._cache, self._watch, self._ids = cache, watch, 0
        self.streams = 0

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        method = grpc.stream_stream_rpc_method_handler(
            self._serve, request_deserializer=discovery_pb2.DiscoveryRequest.FromString, response_serializer=identity
        )
        return [grpc.method_handlers_generic_handler("envoy.service.discovery.v3.AggregatedDiscoveryService", {"StreamAggregatedResources": method})]

    async def _serve(self, requests: AsyncIterator[Any], context: Any) -> Any:
        raise NotImplementedError


class BareFloorServer(_FloorAds):
    """The bare grpc.aio floor: a coroutine handler (not an async generator) that writes pre-encoded
    bytes with `context.write`, and a reader that answers requests itself (no queue hop): per push
    one wake-up of the stream's writer, one write, one read. No cache lookups beyond the snapshot,
    no state machine, no telemetry."""

    async def _serve(self, requests: AsyncIterator[Any], context: Any) -> None:
        first = await context.read()
        role = node_role(first.node)
        self._ids += 1
        stream_id = self._ids
        names: dict[TypeUrl, list[str]] = {}
        out: list[bytes | None] = []
        wake = asyncio.Event()
        changes = 0

        def changed() -> None:
            nonlocal changes
            changes += 1
            snapshot = self._cache.snapshot(role)
            assert snapshot is not None
            out.append(FloorServer.response(snapshot, TypeUrl.ENDPOINT, names[TypeUrl.ENDPOINT], f"change-{changes}"))
            wake.set()

        async def read() -> None:
            item = first
            while item is not grpc.aio.EOF:
                type_url = TypeUrl(item.type_url)
                if not item.response_nonce:
                    names[type_url] = list(item.resource_names)
                    snapshot = self._cache.snapshot(role)
                    assert snapshot is not None
                    out.append(FloorServer.response(snapshot, type_url, names[type_url], "first"))
                    wake.set()
                elif item.response_nonce.startswith("change-"):
                    self._watch.floor_acked(stream_id)
                item = await context.read()
            out.append(None)
            wake.set()

        self._cache.acquire(role, changed)
        self.streams += 1
        reader = asyncio.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                sending, out[:] = out[:], []
                for payload in sending:
                    if payload is None:
                        return
                    await context.write(payload)
        finally:
            reader.cancel()
            self.streams -= 1
            self._cache.release(role, changed)


CHANGED = object()


class Inbox:
    """The shape of the server's streams before issue 12's push work: one queue per stream that
    the reader's requests and the cache's change notifications go through."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._change_queued = False

    def request(self, request: Any) -> None:
        self._queue.put_nowait(request)

    def closed(self) -> None:
        self._queue.put_nowait(None)

    def changed(self) -> None:
        if not self._change_queued:
            self._change_queued = True
            self._queue.put_nowait(CHANGED)

    async def next(self) -> Any:
        item = await self._queue.get()
        if item is CHANGED:
            self._change_queued = False
        return item


class FloorServer(_FloorAds):
    """The floor to compare the server with: the same grpc.aio ADS method, the same cache and change
    notification and the same pre-encoded bytes, but no xDS state machine: every first request of a
    type gets the role's resources, every change an EDS response, and ACKs are only counted."""

    @staticmethod
    def response(snapshot: Snapshot, type_url: TypeUrl, names: Sequence[str], nonce: str) -> bytes:
        resources = snapshot.of(type_url)
        chosen = [resources[n] for n in names if n in resources] if names else list(resources.values())
        return SotwResponse(version_of(chosen), type_url.value, nonce, [r.sotw_entry for r in chosen]).to_bytes()

    async def _serve(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[bytes]:
        inbox = Inbox()

        async def read() -> None:
            async for request in requests:
                inbox.request(request)
            inbox.closed()

        reader = asyncio.create_task(read())
        first = await inbox.next()
        role = node_role(first.node)
        self._ids += 1
        stream_id, names, changes = self._ids, {}, 0
        self._cache.acquire(role, inbox.changed)
        self.streams += 1
        try:
            item = first
            while item is not None:
                snapshot = self._cache.snapshot(role)
                assert snapshot is not None
                if item is CHANGED:
                    changes += 1
                    yield self.response(snapshot, TypeUrl.ENDPOINT, names[TypeUrl.ENDPOINT], f"change-{changes}")
                else:
                    type_url = TypeUrl(item.type_url)
                    if not item.response_nonce:
                        names[type_url] = list(item.resource_names)
                        yield self.response(snapshot, type_url, names[type_url], "first")
                    elif item.response_nonce.startswith("change-"):
                        self._watch.floor_acked(stream_id)
                item = await inbox.next()
        finally:
            reader.cancel()
            self.streams -= 1
            self._cache.release(role, inbox.changed)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-pending-streams", type=int, default=DEFAULT_MAX_PENDING_STREAMS, help="grpc.server.max_pending_requests (grpc's own default: 1000)")
    parser.add_argument(
        "--floor", nargs="?", const="queue", choices=["queue", "bare"],
        help="serve a floor instead of the DiscoveryServer: `queue` (FloorServer: our stream's shape, no xDS state machine) or `bare` (BareFloorServer)",
    )
    parser.add_argument("--gc-young", type=int, default=None, help="gc threshold of the young generation (default: the product's, heap.py; Python's: 700)")
    parser.add_argument("--profile", help="write a cProfile of the server's work for each change to this file")
    args = parser.parse_args()
    configure_logging("json", "warning")  # stdout is the command channel; logs go to stderr

    cache, registry, watch = SnapshotCache(), ProxyRegistry(), AckWatch()
    gc_clock = GcClock()
    notify_clock = NotifyClock()
    started = time.perf_counter()
    cache.set_mesh(synthetic_mesh(args.services, args.endpoints))
    settle_heap()  # what ControlPlane does once the first view is in
    if args.gc_young:
        gc.set_threshold(args.gc_young, *gc.get_threshold()[1:])
    server = grpc.aio.server(options=[*xds_server_options(args.max_pending_streams), ("grpc.max_concurrent_streams", 100000)])
    floor = (BareFloorServer if args.floor == "bare" else FloorServer)(cache, watch) if args.floor else None
    server.add_generic_rpc_handlers(floor.handlers() if floor else DiscoveryServer(cache, registry, watch).handlers())
    streams = (lambda: floor.streams) if floor else (lambda: len(registry.proxies()))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    generation = 0
    print(json.dumps({"event": "ready", "port": port, "mesh_seconds": time.perf_counter() - started, "rss_kib": rss_kib()}), flush=True)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        command, *rest = line.split()
        if command == "stats":
            print(json.dumps({"event": "stats", "rss_kib": rss_kib(), "cpu_seconds": cpu_seconds(), "streams": streams()}), flush=True)
        elif command == "change":
            # Everything the server does for one change, measured in the server: the mesh the
            # harness builds is ready before the clock starts; the pushes and the ACKs they bring
            # back run on this event loop while we wait for the last ACK.
            generation += 1
            # Only s0000's endpoints move; every other service keeps its identity, as with the
            # product's incremental model, so the change allocates (and the collector sees) what
            # the product would, not a whole new mesh.
            moved = synthetic_mesh(1, args.endpoints, generation).services[0]
            current = cache.mesh if cache.mesh is not None else synthetic_mesh(args.services, args.endpoints)
            mesh = dataclasses.replace(current, services=(dataclasses.replace(current.services[0], endpoints=moved.endpoints), *current.services[1:]))
            watch.start(streams())
            profile = cProfile.Profile() if args.profile else None
            if profile is not None:
                profile.enable()
            gc_before, gc_counts = gc_clock.seconds, list(gc_clock.collections)
            notify_before = notify_clock.seconds
            cpu_before, at = cpu_seconds(), time.time()
            cache.set_mesh(mesh)
            rebuild = cpu_seconds() - cpu_before - (notify_clock.seconds - notify_before)
            try:
                await asyncio.wait_for(watch.done.wait(), 60)
            except asyncio.TimeoutError:
                pass
            total = cpu_seconds() - cpu_before
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            print(
                json.dumps(
                    {
                        "event": "changed",
                        "at": at,
                        "streams": watch.target,
                        "acked": len(watch.streams_acked),
                        "all_acked_after": watch.last_ack - at if watch.streams_acked else None,
                        "rebuild_cpu_seconds": rebuild,
                        "push_cpu_seconds": total - rebuild,
                        "gc_cpu_seconds": gc_clock.seconds - gc_before,
                        "gc_collections": [now - then for now, then in zip(gc_clock.collections, gc_counts)],
                    }
                ),
                flush=True,
            )
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
