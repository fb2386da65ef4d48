"""Rolling deploys under load, with AWS's stop semantics: a service without a load balancer gets
SIGTERM right after desiredStatus=STOPPED (no deregistration delay), and ECS stops an old task
once a new one counts as healthy (40 s after RUNNING without a health check). Real Envoy, real
task processes, steady gRPC calls through the edge; the control plane at its defaults.

For each mode (polling, events): a service of --tasks tasks, then --deploys deployments of a new
revision one after the other; reports the calls that failed and the ECS calls per minute.

    .venv/bin/python bench/rolling_deploy.py --mode both --deploys 3
"""

from __future__ import annotations

import argparse
from collections import Counter
import json
import random
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.demo.stack import DemoStack, routeguide_task_definition  # noqa: E402
from controlplane.demo.traffic import SteadyTraffic  # noqa: E402

SERVICE = "routeguide"


def ecs_calls(metrics_port: int) -> dict[str, float]:
    """controlplane_ecs_api_calls_total by operation, summed over clusters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    calls: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("controlplane_ecs_api_calls_total{"):
            labels, value = line.rsplit(" ", 1)
            operation = labels.split('operation="', 1)[1].split('"', 1)[0]
            calls[operation] = calls.get(operation, 0.0) + float(value)
    return calls


def register(stack: DemoStack, environment: dict[str, str], labels: dict[str, str]) -> str:
    definition = routeguide_task_definition(environment=environment, labels=labels)
    definition["containerDefinitions"][0]["stopTimeout"] = 10
    return str(stack.ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"])


def deploy(stack: DemoStack, revision: int, tasks: int, timeout: float, labels: dict[str, str], app: dict[str, str]) -> float:
    """One rolling deployment to a new revision; returns when only new tasks run (seconds taken)."""
    started = time.monotonic()
    new = register(stack, {**app, "DEPLOYMENT": str(revision)}, labels)
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=new)
    while True:
        running = stack.running_tasks(SERVICE)
        stopping = [t for t in stack.tasks(SERVICE, "STOPPED") if t["lastStatus"] != "STOPPED"]
        if len(running) == tasks and all(t["taskDefinitionArn"] == new for t in running) and not stopping:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"deployment {revision} not done after {timeout:.0f} s")
        time.sleep(0.5)


def run(mode: str, deploys: int, tasks: int, healthy_after_running: float, labels: dict[str, str], shutdown_delay: float) -> dict[str, Any]:
    app = {"ROUTEGUIDE_SHUTDOWN_DELAY_S": str(shutdown_delay)}
    octet = random.randint(100, 199)
    with DemoStack(
        cluster=f"roll-{mode}",
        events_queue="ecs-events" if mode == "events" else None,
        local_ecs_args=[
            "--task-address-octet", str(octet), "--instance-address-octet", str(octet + 50),
            "--healthy-after-running-seconds", str(healthy_after_running),
        ],
    ) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, register(stack, app, labels), tasks)
        stack.wait_for_running(SERVICE, tasks)
        stack.start_control_plane()
        envoy = stack.start_envoy(f"edge-{mode}")
        envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=30)
        time.sleep(2.0)
        calls_before, started = ecs_calls(stack.metrics_port), time.monotonic()
        traffic = SteadyTraffic(envoy.target, max_seconds=deploys * (healthy_after_running + 60), max_calls=10**7).start()
        durations = []
        try:
            for revision in range(2, deploys + 2):
                durations.append(round(deploy(stack, revision, tasks, timeout=healthy_after_running + 60, labels=labels, app=app), 1))
            time.sleep(1.0)
        finally:
            report = traffic.stop()
        minutes = (time.monotonic() - started) / 60
        calls_after = ecs_calls(stack.metrics_port)
        # A quiet minute after the deployments: the steady-state cost.
        time.sleep(60)
        calls_idle = ecs_calls(stack.metrics_port)
    during = {op: round((calls_after.get(op, 0) - calls_before.get(op, 0)) / minutes, 1) for op in calls_after}
    idle = {op: calls_idle.get(op, 0) - calls_after.get(op, 0) for op in calls_idle}
    return {
        "mode": mode,
        "app_shutdown_delay_seconds": shutdown_delay,
        "labels": labels,
        "tasks": tasks,
        "deploys": deploys,
        "deploy_seconds": durations,
        "calls": report.calls,
        "failed_calls": report.failed,
        "failures_by_code": dict(Counter(code for _, code, _ in report.failures)),
        "ecs_calls_per_minute_during_deploys": round(sum(during.values()), 1),
        "ecs_calls_per_minute_during_deploys_by_operation": {k: v for k, v in sorted(during.items()) if v},
        "ecs_calls_per_minute_idle": round(sum(idle.values()), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["events", "polling", "both"], default="both")
    parser.add_argument("--deploys", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--healthy-after-running", type=float, default=40.0, help="local ECS scheduler: AWS's 40 s by default")
    parser.add_argument("--shutdown-delay", type=float, default=0.0, help="seconds the app keeps serving after SIGTERM (ROUTEGUIDE_SHUTDOWN_DELAY_S)")
    parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="extra Docker label on the service's task definitions")
    args = parser.parse_args()
    labels = dict(item.split("=", 1) for item in args.label)
    modes = ["polling", "events"] if args.mode == "both" else [args.mode]
    for mode in modes:
        print(json.dumps(run(mode, args.deploys, args.tasks, args.healthy_after_running, labels, args.shutdown_delay)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
