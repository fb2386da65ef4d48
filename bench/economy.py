"""API economy and CPU of discovery against the local ECS, with address-only tasks.

For each size: the calls of the first full resync (cold caches), of a second one (warm), of
changes applied from events (trusting details, and describing them), and the CPU time (this
thread only: the local ECS runs in other threads) of a full resync + build_mesh + translate +
build_snapshot.

    .venv/bin/python bench/economy.py --tasks 100 1000 10000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import structlog
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.cache.snapshot import build_snapshot  # noqa: E402
from controlplane.discovery.ecs import ClusterReader  # noqa: E402
from controlplane.discovery.events import SqsEventSource, parse_message  # noqa: E402
from controlplane.localecs import LocalEcsServer  # noqa: E402
from controlplane.model.build import build_mesh  # noqa: E402
from controlplane.proxy.roles import EdgeRole  # noqa: E402
from controlplane.translate import translate  # noqa: E402

CLUSTER = "bench"


def task_definition(family: str) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "containerDefinitions": [
            {
                "name": "app",
                "image": "local/none",
                "portMappings": [{"containerPort": 50051}],
                "dockerLabels": {"xds.service": family, "xds.port": "50051", "xds.protocol": "grpc", "xds.route.hosts": f"{family}.local", "local-ecs.address-only": "true"},
            }
        ],
    }


def wait_running(ecs: Any, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clusters = ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]
        if clusters["runningTasksCount"] >= total and clusters["pendingTasksCount"] == 0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{total} tasks not RUNNING after {timeout}s")


def drain_queue(source: SqsEventSource) -> list[Any]:
    messages = []
    while True:
        batch = source.receive()
        if not batch:
            return messages
        messages.extend(batch)


def run(tasks: int, services: int) -> dict[str, Any]:
    threading.stack_size(512 * 1024)  # thousands of idle task-runner threads
    server = LocalEcsServer(provisioning_seconds=0.05, pending_seconds=0.05, deactivating_seconds=0.1, scheduler_interval_seconds=0.5, processes=False)
    server.start()
    try:
        kw = dict(endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=4)
        ecs, ec2, sqs = (boto3.client(s, config=config, **kw) for s in ("ecs", "ec2", "sqs"))
        ecs.create_cluster(clusterName=CLUSTER)
        per_service = math.ceil(tasks / services)
        arns = []
        for index in range(services):
            arn = ecs.register_task_definition(**task_definition(f"svc{index}"))["taskDefinition"]["taskDefinitionArn"]
            arns.append(arn)
            ecs.create_service(
                cluster=CLUSTER, serviceName=f"svc{index}", taskDefinition=arn, desiredCount=min(per_service, tasks - index * per_service),
                launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-x"]}},
            )
        started = time.monotonic()
        wait_running(ecs, tasks, timeout=120 + tasks / 50)
        launch_seconds = time.monotonic() - started

        reader = ClusterReader(ecs, ec2)
        cpu = time.thread_time()
        wall = time.monotonic()
        state, cold = reader.read(CLUSTER)
        mesh = build_mesh([state], "xds.")
        snapshot = build_snapshot(translate(mesh, EdgeRole(listen_address="127.0.0.1", listen_port=8443)))
        cold_cpu, cold_wall = time.thread_time() - cpu, time.monotonic() - wall
        cpu = time.thread_time()
        wall = time.monotonic()
        state, warm = reader.read(CLUSTER)
        read_cpu = time.thread_time() - cpu
        mesh = build_mesh([state], "xds.")
        snapshot = build_snapshot(translate(mesh, EdgeRole(listen_address="127.0.0.1", listen_port=8443)))
        warm_cpu, warm_wall = time.thread_time() - cpu, time.monotonic() - wall
        endpoints = sum(len(s.endpoints) for s in mesh.services)
        del snapshot

        # Changes through events: +10 tasks in one service, then a new revision rolled out
        # to a second service (new task definition: one DescribeTaskDefinition).
        queue_url = server.ecs.route_events("bench-events").url
        source = SqsEventSource(sqs, queue_url, wait_seconds=0)
        changes: dict[str, Any] = {}
        ecs.update_service(cluster=CLUSTER, service="svc0", desiredCount=per_service + 10)
        wait_running(ecs, tasks + 10, timeout=60)
        time.sleep(0.5)
        messages = drain_queue(source)
        details = [c.detail for c in (parse_message(m.body) for m in messages) if c]
        _, calls, applied = reader.apply(CLUSTER, details)
        changes["scale_out_10_trusting_details"] = {"events": len(details), "applied": applied, "calls": dict(calls)}
        ecs.update_service(cluster=CLUSTER, service="svc0", desiredCount=per_service)
        time.sleep(1.5)
        details = [c.detail for c in (parse_message(m.body) for m in drain_queue(source)) if c]
        _, calls, applied = reader.apply(CLUSTER, details, trust_details=False)
        changes["scale_in_10_describing"] = {"events": len(details), "applied": applied, "calls": dict(calls)}
        _, after = reader.read(CLUSTER)
        return {
            "tasks": tasks,
            "services": services,
            "endpoints": endpoints,
            "launch_seconds": round(launch_seconds, 1),
            "full_resync_cold": dict(cold),
            "full_resync_warm": dict(warm),
            "full_resync_after_changes": dict(after),
            "describe_tasks_budget": math.ceil(tasks / 100),
            "changes": changes,
            "cpu_seconds_resync_and_rebuild_cold": round(cold_cpu, 3),
            "cpu_seconds_resync_and_rebuild_warm": round(warm_cpu, 3),
            "cpu_seconds_resync_read_only_warm": round(read_cpu, 3),
            "wall_seconds_resync_and_rebuild_warm": round(warm_wall, 3),
            "wall_seconds_resync_and_rebuild_cold": round(cold_wall, 3),
        }
    finally:
        server.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--services", type=int, default=10)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    for tasks in args.tasks:
        print(json.dumps(run(tasks, args.services)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
