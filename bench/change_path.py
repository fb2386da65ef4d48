"""Change-path benchmark: CPU per change, from an ECS task-change event's receipt by discovery's
task table to the response bytes written to the connected streams (and their ACKs handled).

    .venv/bin/python bench/change_path.py --tasks 1000 10000 50000

A synthetic ECS cluster of N tasks, 10 per service (N/10 services, each calling 3 others), read
the way discovery emits it (one ClusterState per change; unchanged Task objects kept). The server
is the product's: ControlPlane.publish (model -> cache) and DiscoveryServer on a loopback port.
Its streams (one edge, and a sidecar per service up to --sidecars) live in a child process, so
their CPU is not counted; they follow up and ACK like Envoy. Changes cycle through 1 task added,
1 task removed, 1 endpoint health change and 1 label change (a service's tasks moving to a new
task-definition revision with another retry policy), each as the task-change events ECS sends
(parsed reports; the SQS message parsing is not counted). Per change, the CPU of this process
(time.process_time: every thread, the garbage collector included) is measured from just before
the task table applies the events (then makes the view, `discovery_view_cpu_ms_median`, and
publish runs: model and cache, `publish_cpu_ms_median_by_kind`) to the moment the child reports
the last response of the change received (a change is over once no response came for
--quiet-ms); `cpu_ms_with_acks` runs on to the end of that quiet window, so it includes handling
the ACKs (and the idle window's own cost, reported as idle_cpu_ms_per_quiet_window).

One JSON object per size: tasks, services, streams, cpu_ms_per_change (median of all changes),
cpu_ms_endpoint_change_median (the task added / removed / health changes: the issue's target),
medians per kind, rss_mib_start (after 10 changes) and rss_mib_end (after all).
The heap is frozen once after the first view, as the product does (ControlPlane._serving_when_ready);
BENCH_GC_FREEZE=1 freezes it again after the streams synced, to show what the collector costs. Each size runs in
its own process (RSS figures would mix otherwise). Loopback addresses only; every wait is bounded."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import gc
import os
import json
import logging
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from controlplane.discovery.state import ClusterState, ContainerDefinition, ContainerEndpoint, PortMapping, Task, TaskDefinition  # noqa: E402

TASKS_PER_SERVICE = 10
UPSTREAMS = 3
ACCOUNT = "arn:aws:ecs:us-east-1:000000000000"
KINDS = ("added", "removed", "health", "label")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def service_name(i: int) -> str:
    return f"s{i:05}"


def upstreams(i: int, services: int) -> list[str]:
    return sorted({service_name((i + k) % services) for k in range(1, UPSTREAMS + 1)} - {service_name(i)})


class SyntheticCluster:
    """Tasks and task definitions, and the views of them discovery's own task table emits: each
    change is reported to a TaskTable as an ECS task-change event would be."""

    def __init__(self, tasks: int, seed: int = 12) -> None:
        from controlplane.discovery.task_table import TaskTable

        self.table = TaskTable("bench")
        self._versions: dict[str, int] = {}
        self.services = max(2, tasks // TASKS_PER_SERVICE)
        self.random = random.Random(seed)
        self.revisions = [1] * self.services
        self.definitions: dict[str, TaskDefinition] = {}
        self.tasks: dict[str, Task] = {}
        self.by_service: list[list[str]] = [[] for _ in range(self.services)]
        self._addresses = 0
        self._ids = 0
        self._clock = 1_000_000.0
        for i in range(self.services):
            for _ in range(TASKS_PER_SERVICE):
                self.add_task(i)
        from controlplane.discovery.task_table import Entry, Report

        reports = [Report(arn, 1, Entry(task, self.definitions[task.task_definition_arn], 1)) for arn, task in self.tasks.items()]
        self.table.reconcile(reports, list(self.tasks), time.time())

    def definition(self, i: int) -> TaskDefinition:
        revision = self.revisions[i]
        arn = f"{ACCOUNT}:task-definition/{service_name(i)}:{revision}"
        found = self.definitions.get(arn)
        if found is None:
            labels = {
                "xds.service": service_name(i),
                "xds.route.prefix": f"/{service_name(i)}.Api/",
                "xds.upstreams": ",".join(upstreams(i, self.services)),
                "xds.retry.attempts": str(1 + revision % 3),  # what a label change changes
            }
            container = ContainerDefinition("app", labels, (PortMapping(50051),))
            found = self.definitions[arn] = TaskDefinition(arn, service_name(i), revision, "awsvpc", (container,))
        return found

    def _address(self) -> str:
        n = self._addresses
        self._addresses += 1
        return f"127.{1 + n // 62500 % 250}.{n // 250 % 250}.{n % 250 + 1}"

    def add_task(self, i: int) -> None:
        self._ids += 1
        self._clock += 1.0
        arn = f"{ACCOUNT}:task/bench/{self._ids:012x}"
        self.tasks[arn] = Task(
            arn=arn, cluster="bench", task_definition_arn=self.definition(i).arn, group=f"service:{service_name(i)}",
            last_status="RUNNING", desired_status="RUNNING", health_status="HEALTHY", availability_zone="us-east-1a",
            container_health=MappingProxyType({"app": "HEALTHY"}),
            endpoints=(ContainerEndpoint("app", 50051, self._address(), 50051),), started_at=self._clock,
        )
        self.by_service[i].append(arn)

    def change(self, kind: str) -> list[Any]:
        """Make one change of `kind`; returns the task-change events ECS sends for it (not applied yet)."""
        i = self.random.randrange(self.services)
        mine = self.by_service[i]
        changed: list[str] = []
        if kind == "added":
            self.add_task(i)
            changed.append(mine[-1])
        elif kind == "removed":
            if len(mine) > 1:
                arn = mine.pop(self.random.randrange(len(mine)))
                del self.tasks[arn]
                changed.append(arn)
        elif kind == "health":
            arn = self.random.choice(mine)
            task = self.tasks[arn]
            flipped = "UNHEALTHY" if task.container_health["app"] == "HEALTHY" else "HEALTHY"
            self.tasks[arn] = dataclasses.replace(task, container_health=MappingProxyType({"app": flipped}))
            changed.append(arn)
        else:  # a deployment of a new task-definition revision has replaced every task of the service
            self.revisions[i] += 1
            definition = self.definition(i)
            for arn in mine:
                self.tasks[arn] = dataclasses.replace(self.tasks[arn], task_definition_arn=definition.arn)
            changed += mine
        return self._reports(changed)

    def _reports(self, arns: list[str]) -> list[Any]:
        """Each change as the task-change event ECS sends for it, parsed the way discovery parses it."""
        from controlplane.discovery.task_table import Entry, Report

        reports = []
        for arn in arns:
            version = self._versions[arn] = self._versions.get(arn, 1) + 1
            task = self.tasks.get(arn)
            if task is None:
                reports.append(Report(arn, version, stopped=True))
            else:
                reports.append(Report(arn, version, Entry(task, self.definitions[task.task_definition_arn], version)))
        return reports

    def receive(self, reports: list[Any]) -> None:
        """Discovery's task table takes the events in."""
        for report in reports:
            self.table.apply_event(report, time.time())

    def view(self) -> ClusterState:
        return self.table.state(time.time())


# -- the streams, in a child process -----------------------------------------------------------


async def run_clients(port: int, services: int, sidecars: int) -> None:
    """One edge and `sidecars` sidecars over SotW ADS; a line on stdout per response after all synced."""
    import grpc
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    cds, eds, lds, rds = (f"type.googleapis.com/envoy.config.{t}" for t in ("cluster.v3.Cluster", "endpoint.v3.ClusterLoadAssignment", "listener.v3.Listener", "route.v3.RouteConfiguration"))
    synced = asyncio.Event()
    waiting = {"count": sidecars + 1}

    async def stream(channel: Any, node: str, metadata: dict[str, Any]) -> None:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
        names: dict[str, list[str]] = {cds: [], lds: [], eds: [], rds: []}
        last: dict[str, tuple[str, str]] = {}
        seen: set[str] = set()

        async def ask(type_url: str) -> None:
            request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=names[type_url])
            request.node.id = node
            request.node.metadata.update(metadata)
            if type_url in last:
                request.version_info, request.response_nonce = last[type_url]
            await call.write(request)

        await ask(cds)
        await ask(lds)
        async for response in call:
            type_url = response.type_url
            last[type_url] = (response.version_info, response.nonce)
            if synced.is_set():
                sys.stdout.write("r\n")
                sys.stdout.flush()
            await ask(type_url)  # the ACK
            follow = None
            if type_url == cds:
                wanted = sorted(
                    c.eds_cluster_config.service_name or c.name
                    for c in (cluster_pb2.Cluster.FromString(r.value) for r in response.resources) if c.type == cluster_pb2.Cluster.EDS
                )
                follow = eds if wanted != names[eds] else None
                names[eds] = wanted
            elif type_url == lds:
                wanted = []
                for r in response.resources:
                    for chain in listener_pb2.Listener.FromString(r.value).filter_chains:
                        for f in chain.filters:
                            manager = hcm_pb2.HttpConnectionManager()
                            if f.typed_config.Unpack(manager) and manager.HasField("rds"):
                                wanted.append(manager.rds.route_config_name)
                follow = rds if sorted(wanted) != names[rds] else None
                names[rds] = sorted(wanted)
            if follow is not None:
                await ask(follow)
            seen.add(type_url)
            if len(seen) == 4 and not synced.is_set():
                seen.add("done")
                waiting["count"] -= 1
                if waiting["count"] == 0:
                    synced.set()
                    sys.stdout.write("synced\n")
                    sys.stdout.flush()

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", 256 * 1024 * 1024)]) for _ in range(1 + sidecars // 100)]
    streams = [stream(channels[0], "edge-0", {"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10000})]
    streams += [
        stream(channels[(k + 1) % len(channels)], f"sidecar-{k}", {"role": "sidecar", "service": service_name(k % services), "outbound_port": 15001})
        for k in range(sidecars)
    ]
    await asyncio.gather(*streams, return_exceptions=True)


# -- the server side, measured -----------------------------------------------------------------


async def measure(
    tasks: int, changes: int, sidecars: int | None, quiet_ms: float, profile: str | None, kinds: tuple[str, ...] = KINDS, sync_timeout: float = 1800
) -> dict[str, Any]:
    import grpc

    from controlplane.app import ControlPlane
    from controlplane.logs import configure_logging
    from controlplane.server.ads import DiscoveryServer
    from controlplane.settings import Settings

    configure_logging("json", "warning")
    cluster = SyntheticCluster(tasks)
    streams = min(cluster.services, 1000) if sidecars is None else sidecars
    settings = Settings(clusters=["bench"], edge_plaintext=True, metrics_port=None, dashboard_port=None)
    never = object()  # discovery is not started: the benchmark hands views to publish itself
    app = ControlPlane(settings, ecs=never, ec2=never, sqs=never, ssm=never)
    started = time.process_time()
    app.publish([cluster.view()])
    first_view_cpu = time.process_time() - started
    # As ControlPlane.start does once the first view is in (_serving_when_ready): what start-up
    # made is frozen out of the garbage collector's scans.
    gc.collect()
    gc.freeze()

    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 100000)])
    server.add_generic_rpc_handlers(DiscoveryServer(app.cache, app.registry, app.telemetry).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--clients", str(port), "--services", str(cluster.services), "--sidecars", str(streams),
        stdout=asyncio.subprocess.PIPE,
    )
    received: dict[str, Any] = {"count": 0, "cpu": 0.0}
    arrived = asyncio.Event()
    synced = asyncio.Event()

    async def read_child() -> None:
        assert child.stdout is not None
        while line := await child.stdout.readline():
            if line == b"r\n":
                received["count"] += 1
                received["cpu"] = time.process_time()  # the clock stops at the last response's arrival
                arrived.set()
            elif line == b"synced\n":
                synced.set()

    reader = asyncio.create_task(read_child())
    try:
        await asyncio.wait_for(synced.wait(), sync_timeout)
        await asyncio.sleep(1.0)
        gc.collect()
        if os.environ.get("BENCH_GC_FREEZE"):
            gc.freeze()
        rss_synced = rss_mib()
        profiler = cProfile.Profile() if profile else None
        timings: dict[str, list[float]] = {kind: [] for kind in kinds}
        publish: dict[str, list[float]] = {kind: [] for kind in kinds}  # of which publish itself (model + cache)
        with_acks: dict[str, list[float]] = {kind: [] for kind in kinds}  # until quiet: the ACKs handled too
        views: list[float] = []  # discovery's TaskTable.state() per change
        responses: list[int] = []
        rss_start = None
        for n in range(changes):
            kind = kinds[n % len(kinds)]
            reports = cluster.change(kind)
            before = received["count"]
            arrived.clear()
            if profiler is not None:
                profiler.enable()
            # The clock starts at the event's receipt: discovery's task table takes it in and makes
            # the view (reported apart too), then publish (model -> cache -> streams woken).
            cpu = time.process_time()
            cluster.receive(reports)
            view = cluster.view()
            made = time.process_time()
            views.append(made - cpu)
            app.publish([view])
            publish[kind].append(time.process_time() - made)
            # Until the streams have everything: at least one response, then quiet.
            await asyncio.wait_for(arrived.wait(), 30)
            while True:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), quiet_ms / 1000)
                except asyncio.TimeoutError:
                    break
            timings[kind].append(received["cpu"] - cpu)
            with_acks[kind].append(time.process_time() - cpu)
            if profiler is not None:
                profiler.disable()
            responses.append(received["count"] - before)
            if n == 9:
                rss_start = rss_mib()
        if profiler is not None and profile:
            profiler.dump_stats(profile)
        idle = []
        for _ in range(20):  # what waiting out the quiet window costs when nothing happens
            cpu = time.process_time()
            await asyncio.sleep(quiet_ms / 1000)
            idle.append(time.process_time() - cpu)
        every = [t for kind in kinds for t in timings[kind]]
        endpoint = [t for kind in kinds if kind != "label" for t in timings[kind]]
        return {
            "tasks": tasks,
            "services": cluster.services,
            "streams": streams + 1,
            "changes": changes,
            "cpu_ms_per_change": round(statistics.median(every) * 1000, 2),
            "cpu_ms_median_by_kind": {kind: round(statistics.median(v) * 1000, 2) for kind, v in timings.items() if v},
            # The target: an endpoint change (a task added or removed, a health change).
            "cpu_ms_endpoint_change_median": round(statistics.median(endpoint) * 1000, 2) if endpoint else None,
            "cpu_ms_p90": round(sorted(every)[int(0.9 * (len(every) - 1))] * 1000, 2),
            "cpu_ms_with_acks_median_by_kind": {kind: round(statistics.median(v) * 1000, 2) for kind, v in with_acks.items() if v},
            "publish_cpu_ms_median_by_kind": {kind: round(statistics.median(v) * 1000, 2) for kind, v in publish.items() if v},
            "responses_per_change_median": statistics.median(responses),
            "discovery_view_cpu_ms_median": round(statistics.median(views) * 1000, 2),
            "idle_cpu_ms_per_quiet_window": round(statistics.median(idle) * 1000, 2),
            "first_view_cpu_s": round(first_view_cpu, 2),
            "rss_mib_synced": round(rss_synced, 1),
            "rss_mib_start": round(rss_start or 0.0, 1),
            "rss_mib_end": round(rss_mib(), 1),
        }
    finally:
        # grpc logs the cancellation of every stream the stop ends: not news here.
        logging.getLogger("grpc._cython.cygrpc").setLevel(logging.CRITICAL)
        child.terminate()
        await child.wait()
        reader.cancel()
        await server.stop(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--changes", type=int, default=1000, help="changes per size (>= 20 per kind for the medians)")
    parser.add_argument("--sidecars", type=int, default=None, help="sidecar streams (default: one per service, at most 1,000)")
    parser.add_argument("--quiet-ms", type=float, default=30.0, help="a change is done when no response came for this long")
    parser.add_argument("--profile", help="cProfile of the measured work (one size) to this file")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="the kinds of change, in turn")
    parser.add_argument("--sync-timeout", type=float, default=1800, help="seconds the streams may take to sync first")
    parser.add_argument("--clients", type=int, help=argparse.SUPPRESS)  # the child: the streams, to this port
    parser.add_argument("--services", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients:
        asyncio.run(run_clients(args.clients, args.services, args.sidecars))
        return 0
    if len(args.tasks) > 1:
        for tasks in args.tasks:
            command = [
                sys.executable, __file__, "--tasks", str(tasks), "--changes", str(args.changes), "--quiet-ms", str(args.quiet_ms),
                "--sync-timeout", str(args.sync_timeout), "--kinds", *args.kinds,
            ]
            if args.sidecars is not None:
                command += ["--sidecars", str(args.sidecars)]
            subprocess.run(command, check=True, timeout=7200)
        return 0
    result = asyncio.run(measure(args.tasks[0], args.changes, args.sidecars, args.quiet_ms, args.profile, tuple(args.kinds), args.sync_timeout))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
