"""Translation memo: memory it holds (its own estimate against RSS), CPU per endpoint change with
and without it, and whether its size stays flat over many changes.

    .venv/bin/python bench/translation_memo.py --services 1000 --tasks-per-service 1 10 100

A mesh of S services x T tasks, each service calling 3 others; roles: one edge, a sidecar and a
proxyless gRPC client per service (2S+1). One JSON line per T. Each process measures one size
(RSS figures would mix otherwise): the script re-runs itself per T. Loopback addresses only; no I/O."""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service  # noqa: E402
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole  # noqa: E402
from controlplane.translate import TranslationMemo, translate  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))


def service(i: int, services: int, tasks: int, generation: int = 0) -> Service:
    name = f"s{i:04d}"
    endpoints = tuple(
        Endpoint(f"127.{1 + i // 250}.{i % 250}.{1 + (k + generation) % 250}", 50051,
                 f"arn:aws:ecs:eu-west-1:1:task/prod/{name}-{k}-{generation}", "prod", f"{name}:1", EndpointHealth.HEALTHY,
                 availability_zone=("eu-west-1a", "eu-west-1b")[k % 2])
        for k in range(tasks)
    )
    return Service(
        name=name, protocol=Protocol.GRPC, route=RouteMatch(path_prefix=f"/{name}/"), container_port=50051, declared_by=f"{name}:1",
        endpoints=endpoints, upstreams=tuple(f"s{(i + j) % services:04d}" for j in (1, 2, 3)),
    )


def measure(services: int, tasks: int, changes: int) -> dict[str, object]:
    base = [service(i, services, tasks) for i in range(services)]
    mesh = Mesh(services=tuple(base))
    roles: list[ProxyRole] = [EdgeRole("127.0.0.1", 10000)]
    roles += [SidecarRole(service=s.name) for s in base] + [GrpcClientRole(service=s.name) for s in base]
    memo = TranslationMemo(max_bytes=1 << 40)
    gc.collect()
    rss_before = rss_bytes()
    for role in roles:
        translate(mesh, role, memo)
    gc.collect()
    rss_held = rss_bytes() - rss_before
    estimate = memo.size_bytes()

    def changed(k: int) -> Mesh:
        moved = list(base)
        moved[k % services] = service(k % services, services, tasks, generation=k + 1)
        return Mesh(services=tuple(moved))

    def cpu_per_change(use: TranslationMemo | None, count: int) -> float:
        times = []
        for k in range(count):
            next_mesh = changed(k)
            started = time.process_time()
            for role in roles:
                translate(next_mesh, role, use)
            times.append(time.process_time() - started)
        return statistics.median(times)

    with_memo = cpu_per_change(memo, changes)
    sizes_after = memo.size_bytes()
    without = cpu_per_change(None, 3)
    return {
        "services": services, "tasks": services * tasks, "roles": len(roles), "memo_entries": len(memo),
        "memo_estimate_mib": round(estimate / 2**20, 1), "rss_held_mib": round(rss_held / 2**20, 1),
        "estimate_over_rss": round(estimate / rss_held, 2) if rss_held > 0 else None,
        "memo_estimate_mib_after_changes": round(sizes_after / 2**20, 1), "changes": changes,
        "cpu_s_per_change_all_roles_memo": round(with_memo, 3), "cpu_s_per_change_all_roles_no_memo": round(without, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--tasks-per-service", type=int, nargs="+", default=[10])
    parser.add_argument("--changes", type=int, default=20, help="endpoint changes per size (median CPU; memo size after them)")
    args = parser.parse_args()
    if len(args.tasks_per_service) > 1:
        for tasks in args.tasks_per_service:
            command = [sys.executable, __file__, "--services", str(args.services), "--tasks-per-service", str(tasks), "--changes", str(args.changes)]
            subprocess.run(command, check=True, timeout=1800)
        return 0
    print(json.dumps(measure(args.services, args.tasks_per_service[0], args.changes)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
