"""Fleet benchmark: N simulated ADS clients (sidecars, SotW, like Envoy) plus real Envoys on one
control plane, one endpoint change, and the time until every client has ACKed it.

    .venv/bin/python bench/fleet.py --clients 100 1000 2000 --envoys 2

Prints one JSON line per N and a Markdown table. Loopback only; every loop is bounded."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from controlplane.proxy.bootstrap import XdsAddress, sidecar_bootstrap  # noqa: E402
from controlplane.demo.envoy import envoy_binary  # noqa: E402
from controlplane.demo.processes import free_port  # noqa: E402
from controlplane.xds.types import TypeUrl  # noqa: E402

HERE = Path(__file__).resolve().parent
UPSTREAMS = 3


def upstreams_of(i: int, services: int) -> list[str]:
    name = f"s{i:04}"
    return sorted({"s0000", *(f"s{(i + k) % services:04}" for k in range(1, UPSTREAMS))} - {name})


class SimulatedSidecar:
    """A SotW ADS client that walks CDS, EDS, LDS, RDS with ACKs, as Envoy does, and then ACKs pushes."""

    def __init__(self, channel: grpc.aio.Channel, index: int, services: int, roles: int | None = None) -> None:
        self.index = index
        # s0000 is the service whose endpoint changes; every other service calls it. With `roles`,
        # clients are sidecars of only that many services (several proxies per role).
        number = 1 + index % min(services - 1, roles or services)
        self.service = f"s{number:04}"
        self.upstreams = upstreams_of(number, services)
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        self.synced = asyncio.Event()
        self.error: str | None = None
        self.eds_updates: list[float] = []

    def _request(self, type_url: TypeUrl, names: list[str], ack: discovery_pb2.DiscoveryResponse | None = None) -> discovery_pb2.DiscoveryRequest:
        req = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=names)
        req.node.id = f"sim-{self.index}"
        req.node.metadata.update({"role": "sidecar", "service": self.service, "outbound_port": 15001})
        if ack is not None:
            req.version_info, req.response_nonce = ack.version_info, ack.nonce
        return req

    async def run(self) -> None:
        try:
            await self._walk()
        except asyncio.CancelledError:
            pass  # the benchmark ends by cancelling every stream
        except grpc.aio.AioRpcError as error:
            if not self.synced.is_set():
                self.error = f"{error.code().name}: {error.details()}"

    async def _walk(self) -> None:
        await self.call.write(self._request(TypeUrl.CLUSTER, []))
        names = {TypeUrl.ENDPOINT: self.upstreams, TypeUrl.LISTENER: [], TypeUrl.ROUTE: ["outbound"]}
        started = {TypeUrl.CLUSTER}
        async for response in self.call:
            type_url = TypeUrl(response.type_url)
            await self.call.write(self._request(type_url, names.get(type_url, []), ack=response))
            if type_url is TypeUrl.ENDPOINT and self.synced.is_set():
                self.eds_updates.append(time.time())
            for follow in (TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE):
                if follow not in started:
                    started.add(follow)
                    await self.call.write(self._request(follow, names[follow]))
                    break
            else:
                if type_url is TypeUrl.ROUTE:
                    self.synced.set()


async def measure(
    clients: int, envoys: int, services: int, endpoints: int, roles: int | None = None, max_pending_streams: int | None = None,
    changes: int = 1,
) -> dict[str, object]:
    pending = ["--max-pending-streams", str(max_pending_streams)] if max_pending_streams else []
    if os.environ.get("FLEET_FLOOR"):
        pending += ["--floor", "bare" if os.environ["FLEET_FLOOR"] == "bare" else "queue"]
    if os.environ.get("FLEET_GC_YOUNG"):
        pending += ["--gc-young", os.environ["FLEET_GC_YOUNG"]]
    if os.environ.get("FLEET_PROFILE"):
        pending += ["--profile", os.environ["FLEET_PROFILE"]]
    server = subprocess.Popen(
        [sys.executable, str(HERE / "fleet_server.py"), "--services", str(services), "--endpoints", str(endpoints), *pending],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    envoy_processes: list[subprocess.Popen[bytes]] = []
    workdir = Path(tempfile.mkdtemp(prefix="fleet-"))

    def ask(command: str) -> dict[str, object]:
        assert server.stdin and server.stdout
        server.stdin.write(command + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())  # type: ignore[no-any-return]

    try:
        assert server.stdout
        ready = json.loads(server.stdout.readline())
        port = int(ready["port"])
        idle = ask("stats")
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(max(1, clients // 50))]
        sims = [SimulatedSidecar(channels[i % len(channels)], i, services, roles) for i in range(clients)]
        tasks = [asyncio.create_task(sim.run()) for sim in sims]
        connect_started = time.perf_counter()
        waiting = [asyncio.ensure_future(sim.synced.wait()) for sim in sims]
        deadline = connect_started + 120
        while not all(w.done() for w in waiting) and time.perf_counter() < deadline:
            if all(w.done() or sim.error for w, sim in zip(waiting, sims)):
                break  # every client either synced or failed: no need to wait for the rest
            await asyncio.sleep(0.05)
        for w in waiting:
            w.cancel()
        sync_seconds = time.perf_counter() - connect_started
        from collections import Counter

        failed = Counter(sim.error or "never synced" for sim in sims if not sim.synced.is_set())
        if failed:
            return {
                "clients": clients,
                "refused_or_unsynced": sum(failed.values()),
                "errors": failed.most_common(3),
                "max_pending_streams": max_pending_streams,
                "seconds": round(sync_seconds, 1),
            }
        for i in range(envoys):
            config = sidecar_bootstrap(node_id=f"envoy-{i}", xds=[XdsAddress("127.0.0.1", port)], service=f"s{i + 1:04}", outbound_port=free_port(), admin_port=free_port())
            path = workdir / f"envoy-{i}.json"
            path.write_text(json.dumps(config))
            envoy_processes.append(subprocess.Popen([envoy_binary(), "-c", str(path), "--disable-hot-restart", "--log-level", "error", "--concurrency", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 30
        while time.time() < deadline and int(ask("stats")["streams"]) < clients + envoys:  # type: ignore[arg-type]
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        loaded = ask("stats")
        # The server measures its own CPU around the change, its pushes and their ACKs.
        changed = await asyncio.to_thread(ask, "change")
        at = float(changed["at"])  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        # Further changes for a median of the server's CPU per stream (one change is one sample).
        per_stream = [float(changed["push_cpu_seconds"]) * 1e6 / max(1, int(changed["streams"]))]  # type: ignore[arg-type]
        gc_ms = [float(changed["gc_cpu_seconds"]) * 1000]  # type: ignore[arg-type]
        gc_runs = [changed["gc_collections"]]
        acked_ms = [float(changed["all_acked_after"]) * 1000]  # type: ignore[arg-type]
        for _ in range(changes - 1):
            again = await asyncio.to_thread(ask, "change")
            per_stream.append(float(again["push_cpu_seconds"]) * 1e6 / max(1, int(again["streams"])))  # type: ignore[arg-type]
            gc_ms.append(float(again["gc_cpu_seconds"]) * 1000)  # type: ignore[arg-type]
            gc_runs.append(again["gc_collections"])
            acked_ms.append(float(again["all_acked_after"]) * 1000 if again["all_acked_after"] is not None else float("inf"))  # type: ignore[arg-type]
            await asyncio.sleep(0.2)
        delays = sorted(sim.eds_updates[0] - at for sim in sims if sim.eds_updates)
        result = {
            "clients": clients,
            "roles": min(services - 1, roles or services),
            "real_envoys": envoys,
            "services": services,
            "endpoints": services * endpoints,
            "initial_sync_seconds": round(sync_seconds, 2),
            "received_p50_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
            "received_p99_ms": round(delays[int(0.99 * (len(delays) - 1))] * 1000, 1) if delays else None,
            "received_max_ms": round(delays[-1] * 1000, 1) if delays else None,
            "all_acked_ms": round(float(changed["all_acked_after"]) * 1000, 1),  # type: ignore[arg-type]
            "acked_streams": changed["acked"],
            "streams": changed["streams"],
            "refused_or_unsynced": 0,
            "rebuild_cpu_ms": round(float(changed["rebuild_cpu_seconds"]) * 1000, 1),  # type: ignore[arg-type]
            "push_cpu_ms": round(float(changed["push_cpu_seconds"]) * 1000, 1),  # type: ignore[arg-type]
            "push_cpu_us_per_stream": round(statistics.median(per_stream), 1),
            "push_cpu_us_per_stream_runs": [round(x) for x in per_stream],
            "all_acked_ms_median": round(statistics.median(acked_ms), 1),
            "gc_cpu_ms_per_change": [round(x, 1) for x in gc_ms],
            "gc_collections_per_change": gc_runs,
            "server_rss_mib": round(int(loaded["rss_kib"]) / 1024, 1),  # type: ignore[arg-type]
            "rss_per_stream_kib": round((int(loaded["rss_kib"]) - int(idle["rss_kib"])) / (clients + envoys), 1),  # type: ignore[arg-type]
        }
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
        return result
    finally:
        for process in envoy_processes:
            process.terminate()
            process.wait(10)
        if server.stdin:
            server.stdin.close()
        server.terminate()
        server.wait(10)


def snapshot_build(services: int, endpoints: int) -> dict[str, float]:
    from bench.fleet_server import synthetic_mesh
    from controlplane.cache.snapshot import build_snapshot
    from controlplane.proxy.roles import EdgeRole
    from controlplane.translate import translate

    mesh = synthetic_mesh(services, endpoints)
    timings = []
    for _ in range(3):
        started = time.process_time()
        build_snapshot(translate(mesh, EdgeRole("127.0.0.1", 10000)))
        timings.append(time.process_time() - started)
    return {"services": services, "endpoints": services * endpoints, "edge_snapshot_cpu_ms": round(min(timings) * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--envoys", type=int, default=2)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10, help="per service")
    parser.add_argument("--roles", type=int, default=None, help="clients are sidecars of this many services (default: one per service)")
    parser.add_argument("--changes", type=int, default=1, help="endpoint changes in a row; CPU per stream is their median")
    parser.add_argument("--max-pending-streams", type=int, default=None, help="the server's grpc.server.max_pending_requests (default: the product's)")
    args = parser.parse_args()
    print(json.dumps(snapshot_build(args.services, args.endpoints)), flush=True)
    rows = []
    for clients in args.clients:
        result = asyncio.run(measure(clients, args.envoys, args.services, args.endpoints, args.roles, args.max_pending_streams, args.changes))
        print(json.dumps(result), flush=True)
        if not result.get("refused_or_unsynced"):
            rows.append(result)
    print("\n| clients | + Envoys | received p50 / p99 / max (ms) | all ACKed (ms) | server CPU: rebuild / pushes+ACKs (ms) | per stream (µs) | server RSS (MiB) | RSS per stream (KiB) | initial sync (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clients']} | {r['real_envoys']} | {r['received_p50_ms']} / {r['received_p99_ms']} / {r['received_max_ms']} | {r['all_acked_ms']} "
            f"| {r['rebuild_cpu_ms']} / {r['push_cpu_ms']} | {r['push_cpu_us_per_stream']} | {r['server_rss_mib']} | {r['rss_per_stream_kib']} | {r['initial_sync_seconds']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
