"""`controlplane demo`: per-call balancing through Envoy versus per-connection balancing (NLB).

Steps: a route-guide service of 2 tasks on the local ECS; an edge Envoy serving TLS with a
certificate made on the fly (by SDS from the control plane); 100 calls over one HTTP/2 connection
through Envoy and through a per-connection TCP balancer, and a few of Envoy's access-log lines; scale to 3 tasks and time how long the
new task takes to receive calls; stop a task under load and count failed calls. Exits non-zero
if a step fails or a result misses its target.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import grpc

from controlplane.demo.certificates import LocalCa
from controlplane.demo.nlb import run_in_thread
from controlplane.demo.stack import DemoStack, task_address
from controlplane.demo.traffic import SteadyTraffic
from controlplane.routeguide.client import count_calls
from controlplane.routeguide.loopback import require_loopback_target

CALLS = 100
SERVICE = "routeguide"
APP_SHUTDOWN_DELAY_S = 1.0  # seconds the demo app keeps serving after SIGTERM (ROUTEGUIDE_SHUTDOWN_DELAY_S)
EDGE_HOST = "edge.demo.internal"  # the name on the demo's certificate; clients send it as SNI and :authority


def tls_channel_factory(ca_pem: str) -> Callable[[str], grpc.Channel]:
    """Channels that verify the edge's certificate against the demo CA, for the name on it."""

    def open_tls(target: str) -> grpc.Channel:
        require_loopback_target(target)
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem.encode())
        options = [("grpc.ssl_target_name_override", EDGE_HOST), ("grpc.default_authority", EDGE_HOST), ("grpc.use_local_subchannel_pool", 1)]
        return grpc.secure_channel(target, credentials, options=options)

    return open_tls


def access_log_entries(envoy_stdout: Path, limit: int = 5) -> list[dict[str, Any]]:
    """The last `limit` JSON access-log lines Envoy wrote."""
    entries = []
    for line in envoy_stdout.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "grpc_status" in entry:
            entries.append(entry)
    return entries[-limit:]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


class Narrator:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)


def _table(title: str, counts: dict[str, int], names: dict[str, str]) -> str:
    lines = [title, f"  {'task':<34} {'address':<22} {'calls':>5}"]
    for address in sorted(set(names) | set(counts)):
        lines.append(f"  {names.get(address, '?'):<34} {address:<22} {counts.get(address, 0):>5}")
    return "\n".join(lines)


def run(narrator: Narrator) -> dict[str, Any]:
    say = narrator.say
    checks: list[Check] = []
    with DemoStack(address_octets=(10, 20), events_queue="ecs-events") as stack:
        say("1. Starting the local ECS API (task state changes go to an SQS queue, as EventBridge routes them) and a route-guide service of 2 tasks ...")
        stack.start_local_ecs()
        # The app keeps serving 1 s after SIGTERM, as docs/discovery.md advises (no load balancer
        # drains it; discovery needs ~0.5 s to take it out of Envoy): gRPC C-core's stop() resets
        # calls that arrive as it stops, and no proxy can retry those safely.
        task_definition = stack.register(environment={"ROUTEGUIDE_SHUTDOWN_DELAY_S": str(APP_SHUTDOWN_DELAY_S)})
        stack.create_service(SERVICE, task_definition, 2)
        tasks = stack.wait_for_running(SERVICE, 2)
        names = {task_address(t) or "": t["taskArn"].rsplit("/", 1)[-1] for t in tasks}
        say(f"   tasks: {', '.join(sorted(names))}")

        say("2. Starting the control plane (reads the events queue, resyncs by polling) and an edge Envoy serving TLS (certificate made on the fly, sent by SDS) ...")
        ca = LocalCa("controlplane-demo-ca")
        cert_path, key_path = ca.issue(EDGE_HOST).write(stack.work_dir, "edge")
        stack.start_control_plane("--edge-certificate", f"demo={cert_path},{key_path}")
        envoy = stack.start_envoy()
        envoy.wait_for_hosts(SERVICE, set(names), timeout=20)
        tls = tls_channel_factory(ca.pem)
        say(f"   Envoy listens on {envoy.target} (TLS for {EDGE_HOST}, ALPN h2); it sees {len(names)} healthy hosts")

        say(f"3. {CALLS} calls over ONE HTTP/2 connection, through Envoy and through a per-connection balancer (NLB) ...")
        per_call = count_calls(envoy.target, CALLS, channel_factory=tls)
        backends = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sorted(names)]
        balancer = run_in_thread("127.0.0.1", 0, backends)
        try:
            per_connection = count_calls(f"127.0.0.1:{balancer.port}", CALLS)
        finally:
            balancer.close()
        say(_table("   through Envoy (per call):", dict(per_call.by_address), names))
        say(_table("   through the NLB stand-in (per connection):", dict(per_connection.by_address), names))
        even = all(45 <= per_call.by_address.get(a, 0) <= 55 for a in names) and per_call.failed == 0
        checks.append(Check("per_call_even", even, f"each of 2 tasks answers 45-55 of {CALLS}: {dict(per_call.by_address)}"))
        access_log = envoy.process.wait_until(lambda: access_log_entries(envoy.process.stdout_path), 10, "access-log lines")
        say("   Envoy's access log (JSON on its stdout), last lines:")
        for entry in access_log[-3:]:
            say(
                f"     {entry['time']} {entry['method']} {entry['path']} grpc_status={entry['grpc_status']} "
                f"upstream_host={entry['upstream_host']} duration_ms={entry['duration_ms']} tls={entry['tls_version']}"
            )
        logged = all(e.get("grpc_status") == "OK" and e.get("upstream_host") in names for e in access_log)
        checks.append(Check("access_log", logged, f"{len(access_log)} JSON lines with grpc_status OK and a task as upstream_host"))

        say("4. Scaling the service to 3 tasks while calls flow ...")
        traffic = SteadyTraffic(envoy.target, max_seconds=60, channel_factory=tls).start()
        try:
            stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
            running = stack.wait_for_running(SERVICE, 3)
            new_task = next(t for t in running if task_address(t) not in names)
            new_address = task_address(new_task) or ""
            names[new_address] = new_task["taskArn"].rsplit("/", 1)[-1]
            started_at = new_task["startedAt"].timestamp()
            first_call = traffic.wait_for_address(new_address, timeout=15)
        finally:
            scale_report = traffic.stop()
        new_task_seconds = None if first_call is None else round(max(0.0, first_call - started_at), 3)
        say(f"   new task {new_address} RUNNING in ECS -> first call answered: {new_task_seconds} s")
        checks.append(Check("new_task_within_5s", new_task_seconds is not None and new_task_seconds <= 5.0, f"{new_task_seconds} s"))

        say(f"5. Stopping one task while calls flow (ECS sends SIGTERM at once, no load balancer; the app serves {APP_SHUTDOWN_DELAY_S:g} s more) ...")
        victim = sorted(running, key=lambda t: t["taskArn"])[0]
        victim_address = task_address(victim) or ""
        traffic = SteadyTraffic(envoy.target, max_seconds=90, channel_factory=tls).start()
        try:
            time.sleep(0.5)
            stopped_requested = time.time()
            stack.ecs.stop_task(cluster=stack.cluster, task=victim["taskArn"], reason="demo: stop one task under load")
            stack.wait_for_stopped(victim["taskArn"], timeout=45)
            time.sleep(1.0)
        finally:
            drain_report = traffic.stop()
        after_stop = sum(1 for t, _, _ in drain_report.failures if t >= stopped_requested)
        say(f"   {drain_report.calls} calls during the stop, {drain_report.failed} failed; task {victim_address} is STOPPED")
        checks.append(Check("zero_failed_calls_on_stop", drain_report.failed == 0 and scale_report.failed == 0, f"{drain_report.failed} failed during the stop, {scale_report.failed} during scale-out"))

        result: dict[str, Any] = {
            "tls": True,
            "access_log": access_log,
            "per_call": dict(sorted(per_call.by_address.items())),
            "per_connection": dict(sorted(per_connection.by_address.items())),
            "new_task_seconds": new_task_seconds,
            "failed_calls": drain_report.failed,
            "calls_during_stop": drain_report.calls,
            "failed_calls_after_stop_request": after_stop,
            "failures": [{"code": code, "details": details} for _, code, details in drain_report.failures[:10]],
            "tasks": names,
            "stopped_task": victim_address,
            "checks": {c.name: {"passed": c.passed, "detail": c.detail} for c in checks},
            "ok": all(c.passed for c in checks),
        }
    say()
    for check in checks:
        say(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="controlplane demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object on stdout")
    args = parser.parse_args(argv)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    narrator = Narrator(quiet=args.json)
    try:
        result = run(narrator)
    except KeyboardInterrupt:
        print("demo: interrupted; every process it started has been stopped", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - report any failed step and exit non-zero
        print(f"demo: FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    if args.json:
        print(json.dumps(result, indent=None))
    return 0 if result["ok"] else 1
