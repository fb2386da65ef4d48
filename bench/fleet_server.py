"""The xDS server of the fleet benchmark: a synthetic mesh of S services x E endpoints, served by
the real DiscoveryServer; driven by commands on stdin, answers as JSON lines on stdout.

Commands: `stats` (RSS, CPU, streams), `change` (move one endpoint of s0000, which every sidecar
calls, wait until every stream ACKed it, and print the server's CPU for the rebuild and for the
pushes and ACKs, measured in this process around exactly that work)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import sys
import time

import grpc

from controlplane.cache.store import SnapshotCache
from controlplane.logs import configure_logging
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service
from controlplane.server.ads import DiscoveryServer
from controlplane.server.observer import NoObserver
from controlplane.server.options import DEFAULT_MAX_PENDING_STREAMS, xds_server_options
from controlplane.server.registry import ProxyRecord, ProxyRegistry
from controlplane.xds.types import TypeUrl

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


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class AckWatch(NoObserver):
    """Counts, from the server's own hooks, the streams that ACKed EDS since a change (no polling)."""

    def __init__(self) -> None:
        self.since = float("inf")
        self.streams_acked: set[int] = set()
        self.last_ack = 0.0
        self.target = 0
        self.done = asyncio.Event()

    def start(self, target: int) -> None:
        self.since, self.streams_acked, self.target, self.done = time.time(), set(), target, asyncio.Event()

    def acked(self, record: ProxyRecord, type_url: TypeUrl, version: str, sent_at: float | None) -> None:
        if type_url is TypeUrl.ENDPOINT and sent_at is not None and sent_at >= self.since and record.stream_id not in self.streams_acked:
            self.streams_acked.add(record.stream_id)
            self.last_ack = time.time()
            if len(self.streams_acked) >= self.target:
                self.done.set()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--max-pending-streams", type=int, default=DEFAULT_MAX_PENDING_STREAMS, help="grpc.server.max_pending_requests (grpc's own default: 1000)")
    parser.add_argument("--profile", help="write a cProfile of the server's work for each change to this file")
    args = parser.parse_args()
    configure_logging("json", "warning")  # stdout is the command channel; logs go to stderr

    cache, registry, watch = SnapshotCache(), ProxyRegistry(), AckWatch()
    started = time.perf_counter()
    cache.set_mesh(synthetic_mesh(args.services, args.endpoints))
    server = grpc.aio.server(options=[*xds_server_options(args.max_pending_streams), ("grpc.max_concurrent_streams", 100000)])
    server.add_generic_rpc_handlers(DiscoveryServer(cache, registry, watch).handlers())
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
            print(json.dumps({"event": "stats", "rss_kib": rss_kib(), "cpu_seconds": cpu_seconds(), "streams": len(registry.proxies())}), flush=True)
        elif command == "change":
            # Everything the server does for one change, measured in the server: the mesh the
            # harness builds is ready before the clock starts; the pushes and the ACKs they bring
            # back run on this event loop while we wait for the last ACK.
            generation += 1
            mesh = synthetic_mesh(args.services, args.endpoints, generation)
            streams = len(registry.proxies())
            watch.start(streams)
            profile = cProfile.Profile() if args.profile else None
            if profile is not None:
                profile.enable()
            cpu_before, at = cpu_seconds(), time.time()
            cache.set_mesh(mesh)
            rebuild = cpu_seconds() - cpu_before
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
                        "streams": streams,
                        "acked": len(watch.streams_acked),
                        "all_acked_after": watch.last_ack - at if watch.streams_acked else None,
                        "rebuild_cpu_seconds": rebuild,
                        "push_cpu_seconds": total - rebuild,
                    }
                ),
                flush=True,
            )
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
