"""Escape hatch: CPU of checking patches when the mesh is rebuilt, without patches, with every
patched service checked again, and with the checks memoised (what `serve` does).

    .venv/bin/python bench/patch_check.py --services 200

S services, each with a cluster and a route patch, one task each (loopback addresses); build_mesh
is timed with time.process_time (CPU of this process), median of --runs rebuilds of an unchanged
view; the memoised run translates the edge after each build, as the control plane does. One JSON line."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from controlplane.model.build import build_mesh  # noqa: E402
from controlplane.proxy.roles import EdgeRole  # noqa: E402
from controlplane.translate import TranslationMemo, translate  # noqa: E402
from controlplane.translate.patch import check_service, memoised_check  # noqa: E402
from unit.builders import cluster_state, task, task_definition  # noqa: E402

PATCHES = {"xds.patch.cluster": '{"connect_timeout": "0.5s"}', "xds.patch.route": '{"route": {"timeout": "3s"}}'}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tds = [task_definition(f"s{i}", 1, {"xds.service": f"s{i}", "xds.route.prefix": f"/s{i}/", **PATCHES}) for i in range(args.services)]
    tasks = [task(td, f"{td.family}-1", f"127.1.{i // 250}.{i % 250 + 1}") for i, td in enumerate(tds)]
    views = [cluster_state(tasks, tds)]
    memo = TranslationMemo()
    result: dict[str, object] = {"services": args.services, "runs": args.runs}
    for name, check in (("no_check_ms", None), ("every_check_ms", check_service), ("memoised_check_ms", memoised_check(memo))):
        times = []
        for _ in range(args.runs):
            started = time.process_time()
            mesh = build_mesh(views, resource_check=check)
            times.append(time.process_time() - started)
            assert len(mesh.services) == args.services, mesh.problems[:1]
            if name == "memoised_check_ms":
                translate(mesh, EdgeRole("127.0.0.1", 10000), memo)
        result[name] = round(statistics.median(times) * 1000, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
