"""Convergence: time from a task reaching RUNNING in ECS (its startedAt) to Envoy routing a call
to it, over many scale-outs, in event mode and in polling mode. Real Envoy, real task processes,
steady gRPC calls every 5 ms.

    .venv/bin/python bench/convergence.py --mode events --changes 50
    .venv/bin/python bench/convergence.py --mode polling --poll-interval 1 --changes 50
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controlplane.demo.stack import DemoStack, task_address  # noqa: E402
from controlplane.demo.traffic import SteadyTraffic  # noqa: E402

SERVICE = "routeguide"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["events", "polling"], default="events")
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    octet = random.randint(100, 199)
    stack = DemoStack(
        cluster="bench",
        poll_interval=args.poll_interval if args.mode == "polling" else 5.0,
        deactivating_seconds=0.5,
        events_queue="ecs-events" if args.mode == "events" else None,
        resync_interval=300 if args.mode == "events" else None,
        local_ecs_args=["--task-address-octet", str(octet), "--instance-address-octet", str(octet + 50)],
    )
    samples: list[float] = []
    with stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 1)
        stack.wait_for_running(SERVICE, 1)
        stack.start_control_plane()
        envoy = stack.start_envoy("edge-bench")
        envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
        traffic = SteadyTraffic(envoy.target, interval=0.005, max_seconds=3600, max_calls=10**7).start()
        try:
            for change in range(args.changes):
                count = 2 if change % 2 == 0 else 1
                before = stack.addresses(stack.running_tasks(SERVICE))
                stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=count)
                running = stack.wait_for_running(SERVICE, count)
                if count == 2:
                    new_task = next(t for t in running if task_address(t) not in before)
                    first = traffic.wait_for_address(task_address(new_task) or "", timeout=30)
                    if first is None:
                        print(json.dumps({"change": change, "error": "never routed"}), flush=True)
                        continue
                    samples.append(first - new_task["startedAt"].timestamp())
                else:
                    time.sleep(0.7)  # let the stopped task drain and go
        finally:
            report = traffic.stop()
    result = {
        "mode": args.mode,
        "poll_interval": args.poll_interval if args.mode == "polling" else None,
        "samples": len(samples),
        "p50_seconds": round(statistics.median(samples), 3) if samples else None,
        "p90_seconds": round(percentile(samples, 0.90), 3) if samples else None,
        "p99_seconds": round(percentile(samples, 0.99), 3) if samples else None,
        "max_seconds": round(max(samples), 3) if samples else None,
        "calls": report.calls,
        "failed_calls": report.failed,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
