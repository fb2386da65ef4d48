"""Envoy reconnect after a control-plane restart (issue 14: "within 2 s"). Local ECS with a service
of 2 real tasks, the control plane, one real edge Envoy; then --restarts times: stop the control
plane, wait until Envoy's `control_plane.connected_state` is 0, keep it down --outage-seconds (so
Envoy's reconnect backoff grows as in a real outage), start it again on the same ports. From the
moment the xDS port accepts TCP connections it measures, polling every 20 ms:

- connected_seconds: until Envoy's `control_plane.connected_state` stat is 1 again;
- synced_seconds: until the new control plane's admin API (ListProxies) shows this Envoy's new
  stream with a CDS version ACKed that equals the CDS version it sent (its current one). That
  includes the control plane's first view of ECS, which it needs before it can send anything.

    .venv/bin/python bench/reconnect.py --restarts 10

Prints one JSON object. Loopback only; every wait is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.convergence import percentile  # noqa: E402
from controlplane.demo.envoy import EnvoyProcess  # noqa: E402
from controlplane.demo.stack import DemoStack, acked_cds_version  # noqa: E402
from controlplane.proto.admin.v1 import admin_pb2_grpc  # noqa: E402

SERVICE = "routeguide"
NODE = "edge-reconnect"
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 30.0


def envoy_cds_version(envoy: EnvoyProcess) -> str:
    """The CDS version Envoy holds, from its /config_dump."""
    for config in envoy.config_dump()["configs"]:
        if config["@type"].endswith("ClustersConfigDump"):
            return str(config.get("version_info", ""))
    return ""


def measure(stack: DemoStack, envoy: EnvoyProcess, admin: admin_pb2_grpc.AdminStub, outage_seconds: float) -> dict[str, Any]:
    """One restart: seconds from the xDS port accepting connections to Envoy connected and to its CDS ACKed."""
    up_at = stack.restart_control_plane(envoy, outage_seconds)
    connected: float | None = None
    synced: float | None = None
    version: str | None = None
    while connected is None or synced is None:
        now = time.monotonic()
        if now - up_at > TIMEOUT_SECONDS:
            raise TimeoutError(f"after {TIMEOUT_SECONDS:.0f} s: connected {connected}, synced {synced}")
        if connected is None and envoy.counter("control_plane.connected_state") == 1:
            connected = now - up_at
        if synced is None:
            version = acked_cds_version(admin, NODE)
            if version is not None:
                synced = now - up_at
        time.sleep(POLL_SECONDS)
    return {"connected_seconds": connected, "synced_seconds": synced, "cds_version": version, "envoy_cds_version": envoy_cds_version(envoy)}


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p90": round(percentile(values, 0.90), 3),
        "max": round(max(values), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--outage-seconds", type=float, default=1.0, help="how long the control plane stays down once Envoy has noticed")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="the control plane's ECS poll interval")
    args = parser.parse_args()
    samples: list[dict[str, Any]] = []
    with DemoStack(cluster="reconnect", poll_interval=args.poll_interval) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 2)
        stack.wait_for_running(SERVICE, 2)
        stack.start_control_plane()
        envoy = stack.start_envoy(NODE)
        envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
        # Short reconnect backoff: the admin API restarts with the control plane and must not be
        # polled through gRPC's default 1-120 s backoff.
        backoff = [("grpc.initial_reconnect_backoff_ms", 20), ("grpc.min_reconnect_backoff_ms", 20), ("grpc.max_reconnect_backoff_ms", 100)]
        with grpc.insecure_channel(stack.admin_target, options=[("grpc.enable_http_proxy", 0), *backoff]) as channel:
            admin = admin_pb2_grpc.AdminStub(channel)
            envoy.process.wait_until(lambda: acked_cds_version(admin, NODE), 20, "CDS ACKed before the first restart")
            for _ in range(args.restarts):
                samples.append(measure(stack, envoy, admin, args.outage_seconds))
        # Still routed to both tasks after the last restart.
        envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
    connected = [s["connected_seconds"] for s in samples]
    synced = [s["synced_seconds"] for s in samples]
    result = {
        "restarts": len(samples),
        "outage_seconds": args.outage_seconds,
        "connected_seconds": summary(connected),
        "synced_seconds": summary(synced),
        "connected_over_2s": sum(1 for v in connected if v > 2.0),
        "synced_over_2s": sum(1 for v in synced if v > 2.0),
        # The new control plane sends the configuration the old one did (versions are content hashes),
        # and Envoy holds that version.
        "cds_versions": sorted({s["cds_version"] for s in samples}),
        "envoy_holds_the_acked_version": all(s["cds_version"] == s["envoy_cds_version"] for s in samples),
        "samples": [{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items() if k.endswith("_seconds")} for s in samples],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
