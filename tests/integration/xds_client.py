"""A proxyless gRPC client: `python xds_client.py TARGET N` makes N calls to an `xds:///` target
(GRPC_XDS_BOOTSTRAP names the control plane) over one channel and prints who answered as JSON.
`N1,N2,...` makes batches of calls on that channel, `PAUSE` seconds apart, each reported apart too.
Tests start it with `run` (a process of its own: gRPC reads the bootstrap once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence, Set
from pathlib import Path
from typing import Any

import grpc

from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc


def main() -> int:
    target, sizes = sys.argv[1], [int(n) for n in sys.argv[2].split(",")]
    wait_for = set(sys.argv[3].split(",")) if len(sys.argv) > 3 and sys.argv[3] else set()
    pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    answered: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    batches: list[dict[str, Counter[str]]] = []
    deadline = time.monotonic() + 30
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        # First wait until the client has resolved the target (and, if asked, sees every address).
        seen: set[str] = set()
        while time.monotonic() < deadline:
            try:
                seen.add(stub.GetFeature(pb.Point(latitude=1, longitude=1), timeout=5, wait_for_ready=True).served_by.address)
            except grpc.RpcError as error:
                failures["warmup:" + error.code().name] += 1
                time.sleep(0.1)
                continue
            if wait_for <= seen:
                break
        for index, size in enumerate(sizes):
            if index:
                time.sleep(pause)
            batch: dict[str, Counter[str]] = {"answered": Counter(), "failures": Counter()}
            for _ in range(size):
                try:
                    batch["answered"][stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5).served_by.address] += 1
                except grpc.RpcError as error:
                    batch["failures"][error.code().name] += 1
            answered.update(batch["answered"])
            failures.update(batch["failures"])
            batches.append(batch)
    print(json.dumps({"answered": answered, "failures": failures, "seen_during_warmup": sorted(seen), "batches": batches}))
    return 0


def run(
    bootstrap: Path, target: str, calls: int | Sequence[int], wait_for: Set[str] = frozenset(), pause: float = 0.0
) -> dict[str, Any]:
    """Runs this client with `bootstrap` against `target`: {"answered": {address: calls}, "failures": {status: calls},
    "batches": [{"answered": ..., "failures": ...}, ...]}. `calls` is one batch's size or several, `pause` seconds apart."""
    sizes = [calls] if isinstance(calls, int) else list(calls)
    env = dict(os.environ, GRPC_XDS_BOOTSTRAP=str(bootstrap), no_proxy="*")
    arguments = [target, ",".join(map(str, sizes)), ",".join(sorted(wait_for)), str(pause)]
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, timeout=60 + pause * len(sizes), env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)  # type: ignore[no-any-return]


if __name__ == "__main__":
    raise SystemExit(main())
