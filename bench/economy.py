"""What discovery costs: ECS calls per minute by mode and cluster size (beside Traefik's published
algorithm), what a change costs, and the CPU of a full resync.

A local ECS in a child process with address-only tasks (lifecycle and unique 127.x addresses, no
processes), awsvpc, one service (and task-definition family) per 100 tasks. Calls are counted by
the reader, the same numbers as `controlplane_ecs_api_calls_total`. CPU is this process's own
(`time.process_time`: the local ECS is another process), median of --repeats full reads with a
warm task-definition cache.

    .venv/bin/python bench/economy.py --tasks 2 200 2000 --resync-tasks 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import structlog
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.discovery.aws_session import lean_session  # noqa: E402
from controlplane.demo.processes import ChildProcess  # noqa: E402
from controlplane.discovery.reader import ClusterReader  # noqa: E402

CLUSTER = "bench"
POLL_SECONDS = 5.0
RESYNC_SECONDS = 300.0
TRAEFIK_REFRESH_SECONDS = 15.0  # providers.ecs.refreshSeconds default
TRAEFIK_TASK_DEFINITION_TTL_MINUTES = 30.0  # its cache is keyed by task ARN, 30 min TTL


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
                "dockerLabels": {"xds.service": family, "xds.port": "50051", "xds.protocol": "grpc"},
            }
        ],
    }


def wait_running(ecs: Any, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cluster = ecs.describe_clusters(clusters=[CLUSTER])["clusters"][0]
        if cluster["runningTasksCount"] == total and cluster["pendingTasksCount"] == 0:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{total} tasks not RUNNING after {timeout}s")


class Cluster:
    """A local ECS in a child process (so that this process's CPU is discovery's alone) with
    `tasks` address-only tasks, one service per 100."""

    def __init__(self, tasks: int, work_dir: Path) -> None:
        self.process = ChildProcess(
            "local-ecs",
            [sys.executable, "-m", "controlplane", "local-ecs", "--port", "0", "--no-processes", "--log-dir", str(work_dir)],
            work_dir,
        ).start()
        self.url = str(self.process.wait_for_stdout_json("local_ecs.ready", timeout=30)["url"])
        self.tasks = tasks
        self.services = max(1, math.ceil(tasks / 100))
        self.ecs = self.client(boto3.session.Session(), "ecs")
        self.ecs.create_cluster(clusterName=CLUSTER)
        for index in range(self.services):
            arn = self.ecs.register_task_definition(**task_definition(f"svc{index}"))["taskDefinition"]["taskDefinitionArn"]
            self.ecs.create_service(
                cluster=CLUSTER, serviceName=f"svc{index}", taskDefinition=arn,
                desiredCount=min(100, tasks - index * 100), launchType="FARGATE",
                networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-x"]}},
            )
        wait_running(self.ecs, tasks, timeout=120 + tasks / 20)

    def client(self, session: Any, service: str) -> Any:
        return session.client(
            service, endpoint_url=self.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
            config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=4, read_timeout=120),
        )

    def reader(self, session: Any) -> ClusterReader:
        return ClusterReader(self.client(session, "ecs"), self.client(session, "ec2"))

    def close(self) -> None:
        self.process.stop(timeout=60)


def total(calls: Any) -> int:
    return int(sum(calls.values()))


def costs(size: int, work_dir: Path) -> dict[str, Any]:
    cluster = Cluster(size, work_dir)
    try:
        reader = cluster.reader(lean_session())
        cold = reader.read(CLUSTER).calls
        warm = reader.read(CLUSTER).calls
        # A change: 10 tasks (or 1 of 2) stop. The next poll no longer lists them and describes
        # them once (they left the RUNNING list); the one after sees them STOPPED and forgets them.
        stopped = min(10, max(1, size // 2))
        cluster.ecs.update_service(cluster=CLUSTER, service="svc0", desiredCount=min(100, size) - stopped)
        time.sleep(0.3)
        after_stop = reader.read(CLUSTER).calls
        time.sleep(3.0)
        settled = reader.read(CLUSTER).calls
        pages = math.ceil(size / 100)
        polls_per_minute = 60 / POLL_SECONDS
        traefik_td = size / TRAEFIK_TASK_DEFINITION_TTL_MINUTES
        return {
            "tasks": size,
            "first_read": dict(cold),
            "unchanged_poll": dict(warm),
            f"poll_after_{stopped}_stopped": dict(after_stop),
            "poll_after_that": dict(settled),
            "calls_per_minute": {
                "polling_5s": round(total(warm) * polls_per_minute, 1),
                "events_resync_300s_no_health_checks": round(total(warm) * 60 / RESYNC_SECONDS, 2),
                "events_plus_health_refresh_all_checked_30s": round(total(warm) * 60 / RESYNC_SECONDS + pages * 2, 2),
                "before_this_change_polling_5s": round((2 * pages + 1) * polls_per_minute, 1),
                "traefik_15s_default": round(2 * pages * 60 / TRAEFIK_REFRESH_SECONDS + traefik_td, 1),
                "traefik_5s": round(2 * pages * polls_per_minute + traefik_td, 1),
            },
        }
    finally:
        cluster.close()


def resync_cpu(size: int, repeats: int, work_dir: Path) -> dict[str, Any]:
    cluster = Cluster(size, work_dir)
    results: dict[str, Any] = {"tasks": size, "repeats": repeats}
    try:
        for name, session in (("botocore_default", boto3.session.Session()), ("lean_session", lean_session())):
            reader = cluster.reader(session)
            reader.read(CLUSTER)  # warm: task definitions cached, connections open
            for freeze in (False, True):
                gc.collect()
                if freeze:
                    gc.freeze()  # what the control plane does once started
                samples = []
                for _ in range(repeats):
                    started = time.process_time()
                    state = reader.read(CLUSTER).state
                    samples.append(time.process_time() - started)
                    assert len(state.tasks) == size
                if freeze:
                    gc.unfreeze()
                key = f"{name}{'_gc_frozen' if freeze else ''}"
                results[key] = {"median_cpu_seconds": round(statistics.median(samples), 3), "samples": [round(s, 3) for s in samples]}
    finally:
        cluster.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, nargs="*", default=[2, 200, 2000])
    parser.add_argument("--resync-tasks", type=int, nargs="*", default=[10000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with tempfile.TemporaryDirectory(prefix="economy-") as work_dir:
        for size in args.tasks:
            print(json.dumps(costs(size, Path(work_dir))), flush=True)
        for size in args.resync_tasks:
            print(json.dumps(resync_cpu(size, args.repeats, Path(work_dir))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
