"""Stateless replicas under load: 3 control-plane replicas against the local ECS, every ECS event
fanned out as in AWS (EventBridge -> SNS topic -> one SQS queue per replica, SNS envelopes), a
local NLB in front of them (per-connection balancing, targets registered and deregistered as ECS
does), real Envoys (an edge and a sidecar) whose bootstraps list the replicas' addresses, and
simulated ADS proxies through the NLB, with steady gRPC calls through both Envoys. Then: kill one
replica (SIGKILL), drain another (deregistered, then SIGTERM), add a new one, roll a deploy.

    .venv/bin/python bench/replicas.py --proxies 150

Prints one JSON object. Loopback only; every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.demo.envoy import EnvoyProcess  # noqa: E402
from controlplane.demo.nlb import BalancerThread, run_in_thread  # noqa: E402
from controlplane.demo.processes import free_port  # noqa: E402
from controlplane.demo.replicas import Replica, replica_queue  # noqa: E402
from controlplane.demo.stack import DemoStack  # noqa: E402
from controlplane.demo.traffic import SteadyTraffic  # noqa: E402
from controlplane.demo.xds_proxy import SimulatedProxy, edge_node, fetch, sidecar_node  # noqa: E402
from controlplane.proxy.bootstrap import XdsAddress, edge_bootstrap, sidecar_bootstrap  # noqa: E402

SERVICE = "routeguide"
CALLS_ITSELF = {"xds.upstreams": SERVICE}  # its sidecars get the service as an upstream
# The app keeps serving 2 s after SIGTERM, as an app without a load balancer must (ECS sends SIGTERM
# the moment it stops a task; see docs/benchmarks.md, rolling deploys): a deploy is not what this
# benchmark measures, the replicas are.
APP = {"ROUTEGUIDE_SHUTDOWN_DELAY_S": "2"}


class Fleet:
    """Simulated proxies on their own event loop (a thread), each on its own connection through the
    NLB; a proxy whose stream ends reconnects after Envoy's backoff (0.25-2 s, jittered) and
    records how long it was without a stream and what versions its new stream brought."""

    def __init__(self, target: str, count: int, edge_port: int) -> None:
        self.target = target
        # Most proxies are sidecars (many per role, as tasks of one service); some are edges.
        self.proxies = [
            SimulatedProxy(edge_node(f"sim-edge-{i}", edge_port) if i % 10 == 0 else sidecar_node(f"sim-{i}", SERVICE)) for i in range(count)
        ]
        self.reconnects: list[dict[str, Any]] = []
        # When ECS was changing (monotonic start, end): a reconnect whose gap overlaps none of them
        # must bring nothing new.
        self.changes: list[tuple[float, float]] = []
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)

    def start(self) -> Fleet:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def call(self, coroutine: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the fleet's event loop (grpc.aio wants one loop per process)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def quiet(self, start: float, end: float) -> bool:
        return not any(a <= end and start <= b for a, b in self.changes)

    def synced(self) -> int:
        return sum(1 for p in self.proxies if p.synced.is_set())

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        tasks = [asyncio.create_task(self._keep(p)) for p in self.proxies]
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _keep(self, proxy: SimulatedProxy) -> None:
        backoff = 0.25
        ended_at: float | None = None
        while True:
            held = dict(proxy.received.versions)
            channel = grpc.aio.insecure_channel(self.target, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)])
            proxy.synced.clear()
            stream = asyncio.create_task(proxy.run(channel))
            synced = asyncio.create_task(proxy.synced.wait())
            await asyncio.wait({stream, synced}, return_when=asyncio.FIRST_COMPLETED)
            if synced.done() and ended_at is not None:
                changed = sorted(t.short for t, v in proxy.received.first_versions.items() if held.get(t) not in (None, v))
                self.reconnects.append({
                    "seconds": time.monotonic() - ended_at,
                    "changed": changed,
                    "gap": (ended_at, time.monotonic()),
                    "node": proxy.node_id,
                    "ended": proxy.ended,
                })
            if synced.done():
                backoff = 0.25
                await stream
                ended_at = time.monotonic()
            else:
                synced.cancel()
                ended_at = ended_at or time.monotonic()
            await channel.close()
            await asyncio.sleep(random.uniform(0.5, 1.0) * backoff)  # Envoy's jittered backoff
            backoff = min(2.0, backoff * 2)


def streams_per_replica(replicas: list[Replica]) -> dict[str, int]:
    counts = {}
    for replica in replicas:
        try:
            counts[replica.name] = len(replica.proxies())
        except grpc.RpcError:
            counts[replica.name] = 0
    return counts


def envoy_rebuilds(envoy: EnvoyProcess) -> int:
    """Clusters and listeners Envoy added, modified or removed after its first configuration."""
    total = 0
    for line in envoy.admin("/stats?filter=^(cluster_manager\\.cluster_(modified|removed)|listener_manager\\.listener_(modified|removed))$").splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            total += int(value)
    return total


def identical(fleet: Fleet, replicas: list[Replica], roles: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    served = {(r.name, role): fleet.call(fetch(r.target, node)).snapshot() for r in replicas for role, node in roles.items()}
    same = all(served[(r.name, role)] == served[(replicas[0].name, role)] for r in replicas for role in roles)
    return same, served


def _startup_calls(replica: Replica) -> int:
    """The calls of the replica's first full read (from its discovery.synced log event)."""
    for event in replica.log():
        if event.get("event") == "discovery.synced" and event.get("kind") == "resync":
            return int(event.get("api_calls") or 0)
    return 0


def wait(probe: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.25)
    raise TimeoutError(f"{what}: not after {timeout:.0f} s")


def run(args: argparse.Namespace) -> dict[str, Any]:
    flags = (
        "--xds-max-connection-age-seconds", str(args.connection_age), "--xds-max-connection-age-grace-seconds", "5",
        "--xds-drain-seconds", str(args.drain), "--resync-interval", str(args.resync),
    )
    phases: dict[str, float] = {}
    started = time.monotonic()
    wall_started = time.time()
    with DemoStack(cluster="replicas", events_topic="ecs-events", healthy_after_running_seconds=2.0) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(labels=CALLS_ITSELF, environment=APP), args.tasks)
        stack.wait_for_running(SERVICE, args.tasks, timeout=60)
        spare_port = free_port()  # where the replica added later will listen (bootstraps list it)
        replicas = [Replica(stack, name, replica_queue(stack, f"replica-{name}"), flags).start(wait=False) for name in "abc"]
        for replica in replicas:
            replica.wait_ready()
        live = list(replicas)
        nlb: BalancerThread = run_in_thread("127.0.0.1", 0, [("127.0.0.1", r.xds_port) for r in live])
        xds = [r.xds for r in replicas] + [XdsAddress("127.0.0.1", spare_port)]
        edge_port, outbound_port = free_port(), free_port()
        edge = EnvoyProcess("edge", 0, stack.work_dir, listen_port=edge_port, config=edge_bootstrap(node_id="edge", xds=xds, listen_address="127.0.0.1", listen_port=edge_port))
        sidecar = EnvoyProcess("sidecar", 0, stack.work_dir, listen_port=outbound_port, config=sidecar_bootstrap(node_id="sidecar", xds=xds, service=SERVICE, outbound_port=outbound_port))
        stack.envoys += [edge, sidecar]
        edge.start()
        sidecar.start()
        addresses = stack.addresses(stack.running_tasks(SERVICE))
        edge.wait_for_hosts(SERVICE, addresses, timeout=60)
        sidecar.wait_for_hosts(SERVICE, addresses, timeout=60)
        limit = args.seconds
        traffic = [
            SteadyTraffic(edge.target, interval=0.02, max_seconds=limit, max_calls=10**6).start(),
            SteadyTraffic(sidecar.target, interval=0.02, max_seconds=limit, max_calls=10**6,
                          channel_factory=lambda t: grpc.insecure_channel(t, options=[("grpc.default_authority", SERVICE)])).start(),
        ]
        fleet = Fleet(nlb.address, args.proxies, edge_port).start()
        try:
            wait(lambda: fleet.synced() == args.proxies, 120, f"{args.proxies} simulated proxies synced")
            phases["steady"] = time.monotonic() - started
            time.sleep(5)
            initial_streams = streams_per_replica(live)
            rebuilds_before = envoy_rebuilds(edge) + envoy_rebuilds(sidecar)

            # Kill: the process dies; the NLB's health checks take the target out a little later.
            victim = live.pop(0)
            ecs_seen = {victim.name: victim.status().ecs_requests}
            victim.kill()
            phases["kill"] = time.monotonic() - started
            time.sleep(2)
            nlb.set_backends([("127.0.0.1", r.xds_port) for r in live])
            time.sleep(10)

            # Drain: ECS deregisters the target, then sends SIGTERM; the replica closes its streams one by one.
            drained = live.pop(0)
            nlb.set_backends([("127.0.0.1", r.xds_port) for r in live])
            ecs_seen[drained.name] = drained.status().ecs_requests
            drained.terminate()
            phases["drain"] = time.monotonic() - started
            drained.wait_exit(args.drain + 30)
            time.sleep(3)

            # Add: a new replica (its own queue on the topic) joins the NLB; connection age spreads streams.
            added = Replica(stack, "d", replica_queue(stack, "replica-d"), flags, xds_port=spare_port).start()
            live.append(added)
            replicas.append(added)
            nlb.set_backends([("127.0.0.1", r.xds_port) for r in live])
            phases["add"] = time.monotonic() - started
            time.sleep(args.connection_age * 1.1 + 5 + 5)
            rebalanced = streams_per_replica(live)

            # Deploy: a new revision rolls through the service while everything keeps running.
            change_started = time.monotonic()
            phases["deploy"] = change_started - started
            revision = stack.register(labels=CALLS_ITSELF, environment={**APP, "REVISION": "2"})
            stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=revision)
            # Done when the new tasks run and every old one has STOPPED (a stopping task is still
            # served, as DRAINING: until then ECS is changing).
            wait(lambda: {t["taskDefinitionArn"] for t in stack.running_tasks(SERVICE)} == {revision} and len(stack.running_tasks(SERVICE)) == args.tasks
                 and not [t for t in stack.tasks(SERVICE) if t["taskDefinitionArn"] != revision]
                 and all(t["lastStatus"] == "STOPPED" for t in stack.tasks(SERVICE, "STOPPED")), 180, "deploy done")
            addresses = stack.addresses(stack.running_tasks(SERVICE))
            edge.wait_for_hosts(SERVICE, addresses, timeout=60)
            sidecar.wait_for_hosts(SERVICE, addresses, timeout=60)
            roles = {"edge": edge_node("bench-edge", edge_port), "sidecar": sidecar_node("bench-sidecar", SERVICE)}
            same, _ = wait(lambda: (r := identical(fleet, live, roles))[0] and r, 30, "replicas serving identical resources")
            fleet.changes.append((change_started, time.monotonic() + 1.0))  # every replica serves the deploy's result
            phases["deployed"] = time.monotonic() - started
            time.sleep(3)
            reports = [t.stop() for t in traffic]
            rebuilds = envoy_rebuilds(edge) + envoy_rebuilds(sidecar) - rebuilds_before
            for replica in live:
                ecs_seen[replica.name] = replica.status().ecs_requests
            lifetimes = {r.name: r.lifetime_minutes() for r in replicas}
            startup = {r.name: _startup_calls(r) for r in replicas}
        finally:
            fleet.stop()
            nlb.close()
            for replica in replicas:
                replica.stop()
        elapsed_minutes = (time.monotonic() - started) / 60
    moves = [r for r in fleet.reconnects if fleet.quiet(*r["gap"])]
    churned = [r for r in moves if r["changed"]]
    seconds = sorted(r["seconds"] for r in fleet.reconnects)
    # Each replica's ECS requests over its own life; a replica killed early made little more than its
    # start-up read, so the rate after that read is reported too (what each replica adds in steady state).
    per_replica = {name: round(sum(e.by_operation.values()) / lifetimes[name], 1) for name, e in ecs_seen.items()}
    after_startup = {name: round((sum(e.by_operation.values()) - startup[name]) / lifetimes[name], 1) for name, e in ecs_seen.items()}
    return {
        "replicas": 3,
        "replicas_at_end": [r.name for r in live],
        "proxies": args.proxies,
        "real_envoys": 2,
        "failed_calls": sum(r.failed for r in reports),
        "calls": sum(r.calls for r in reports),
        "failures": [
            {"via": via, "at_seconds": round(at - wall_started, 1), "code": code, "details": details[:120]}
            for via, r in zip(("edge", "sidecar"), reports)
            for at, code, details in r.failures
        ][:20],
        "identical_resources": same,
        "proxies_churned": len({r["node"] for r in churned}),
        "churned": [{**r, "gap": [round(t - started, 2) for t in r["gap"]]} for r in churned][:10],
        "reconnects": len(fleet.reconnects),
        "reconnects_while_ecs_quiet": len(moves),
        "reconnect_seconds_p50": round(statistics.median(seconds), 2) if seconds else None,
        "reconnect_seconds_p99": round(seconds[int(0.99 * (len(seconds) - 1))], 2) if seconds else None,
        "envoy_clusters_or_listeners_rebuilt": rebuilds,
        "streams_per_replica": {"before": initial_streams, "after_rebalancing": rebalanced},
        "ecs_calls_per_minute": {**per_replica, "total": round(sum(per_replica.values()), 1)},
        "ecs_calls_per_minute_after_startup_read": {**after_startup, "total": round(sum(after_startup.values()), 1)},
        "ecs_calls_by_operation": {name: dict(e.by_operation) for name, e in ecs_seen.items()},
        "ecs_startup_read_calls": startup,
        "replica_minutes": {name: round(m, 2) for name, m in lifetimes.items()},
        "phases_at_seconds": {k: round(v, 1) for k, v in phases.items()},
        "minutes": round(elapsed_minutes, 2),
        "settings": {"max_connection_age_s": args.connection_age, "drain_s": args.drain, "resync_s": args.resync, "tasks": args.tasks},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxies", type=int, default=150, help="simulated ADS proxies through the NLB")
    parser.add_argument("--tasks", type=int, default=3, help="tasks of the route-guide service")
    parser.add_argument("--connection-age", type=float, default=30.0, help="replicas' --xds-max-connection-age-seconds")
    parser.add_argument("--drain", type=float, default=10.0, help="replicas' --xds-drain-seconds")
    parser.add_argument("--resync", type=float, default=60.0, help="replicas' --resync-interval (jittered +-10 %%)")
    parser.add_argument("--seconds", type=float, default=420.0, help="upper bound of the whole run's traffic")
    args = parser.parse_args()
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
