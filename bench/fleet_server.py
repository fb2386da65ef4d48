"""The xDS server of the fleet benchmark: a synthetic mesh of S services x E endpoints, served by
the real DiscoveryServer; driven by commands on stdin, answers as JSON lines on stdout.

Commands: `stats` (RSS, CPU, streams), `change` (move one endpoint of s0000, which every sidecar
calls), `wait-acked T` (wait until every stream ACKed EDS after time T; print when)."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time

import grpc

from controlplane.cache.store import SnapshotCache
from controlplane.logs import configure_logging
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service
from controlplane.server.ads import DiscoveryServer
from controlplane.server.registry import ProxyRegistry
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    configure_logging("json", "warning")  # stdout is the command channel; logs go to stderr

    cache, registry = SnapshotCache(), ProxyRegistry()
    started = time.perf_counter()
    cache.set_mesh(synthetic_mesh(args.services, args.endpoints))
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 100000)])
    server.add_generic_rpc_handlers(DiscoveryServer(cache, registry).handlers())
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
            generation += 1
            cpu_before, at = cpu_seconds(), time.time()
            cache.set_mesh(synthetic_mesh(args.services, args.endpoints, generation))
            print(json.dumps({"event": "changed", "at": at, "rebuild_cpu_seconds": cpu_seconds() - cpu_before}), flush=True)
        elif command == "wait-acked":
            since, cpu_before = float(rest[0]), cpu_seconds()
            deadline = time.time() + 60
            while time.time() < deadline:
                records = registry.proxies()
                done = [r for r in records if (s := r.types.get(TypeUrl.ENDPOINT)) and s.acked_at and s.acked_at >= since and s.acked_version == s.sent_version]
                if len(done) == len(records):
                    break
                await asyncio.sleep(0.005)
            last = max((r.types[TypeUrl.ENDPOINT].acked_at or 0) for r in registry.proxies() if TypeUrl.ENDPOINT in r.types)
            lagging = [
                {"node": r.node_id, **{t.short: [s.sent_version, s.acked_version, s.nacks, s.last_nack.message if s.last_nack else None] for t, s in r.types.items()}}
                for r in registry.proxies()
                if r not in done
            ]
            print(json.dumps({"event": "acked", "all_acked_after": last - since, "streams": len(registry.proxies()), "acked": len(done), "cpu_seconds": cpu_seconds() - cpu_before, "lagging": lagging[:5]}), flush=True)
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
