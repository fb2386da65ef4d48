"""Stateless replicas with real parts: one local ECS whose events fan out to each replica's own
queue (one through the SNS topic, in SNS envelopes; one as a separate EventBridge target that
reorders and duplicates), real route-guide tasks, and a real Envoy whose bootstrap lists the
replicas.

- Both replicas serve byte-identical resources for the same roles, also after a rolling deploy
  whose events each replica received in a different order.
- The Envoy moves from replica to replica (its replica drained by SIGTERM; then, once a
  replacement is up, the other one killed) under steady gRPC traffic with 0 failed calls, and
  receives no new cluster or listener version.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.replicas import Replica, replica_queue
from controlplane.demo.stack import DemoStack
from controlplane.demo.traffic import SteadyTraffic
from controlplane.demo.xds_proxy import edge_node, fetch, sidecar_node
from controlplane.proxy.bootstrap import edge_bootstrap

pytestmark = pytest.mark.timeout(300)
SERVICE = "routeguide"
EDGE_PORT = free_port()
ROLES = {"edge": edge_node("probe-edge", EDGE_PORT), "sidecar": sidecar_node("probe-sidecar", SERVICE)}
# Short drain, events only between rare resyncs: convergence below comes from the events.
REPLICA_FLAGS = ("--xds-drain-seconds", "2", "--resync-interval", "300")
CALLS_ITSELF = {"xds.upstreams": SERVICE}


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="replicas", events_topic="ecs-events", healthy_after_running_seconds=1.0) as stack:
        stack.start_local_ecs()
        # The service calls itself, so its sidecar role has the service as an upstream too.
        stack.create_service(SERVICE, stack.register(labels=CALLS_ITSELF), 2)
        stack.wait_for_running(SERVICE, 2)
        yield stack


@pytest.fixture(scope="module")
def replicas(stack: DemoStack) -> Iterator[list[Replica]]:
    a = Replica(stack, "a", replica_queue(stack, "replica-a"), REPLICA_FLAGS).start(wait=False)
    b = Replica(stack, "b", replica_queue(stack, "replica-b", via_topic=False, reorder_rate=0.3, duplicate_rate=0.2), REPLICA_FLAGS)
    b.start(wait=False)
    started = [a, b]
    try:
        for replica in started:
            replica.wait_ready()
        yield started
    finally:
        for replica in started:
            replica.stop()


def served(replica: Replica, role: str) -> dict[str, dict[str, bytes]]:
    return asyncio.run(fetch(replica.target, ROLES[role])).snapshot()


def endpoints_of(snapshot: dict[str, dict[str, bytes]]) -> set[str]:
    from envoy.config.endpoint.v3 import endpoint_pb2

    assignment = endpoint_pb2.ClusterLoadAssignment.FromString(snapshot["EDS"][SERVICE])
    return {
        f"{lb.endpoint.address.socket_address.address}:{lb.endpoint.address.socket_address.port_value}"
        for group in assignment.endpoints
        for lb in group.lb_endpoints
    }


def identical_when_settled(replicas: list[Replica], expected: set[str], timeout: float = 45.0) -> dict[str, Any]:
    """Poll until every replica serves the expected endpoints; return what each served last."""
    deadline = time.monotonic() + timeout
    while True:
        seen = {(r.name, role): served(r, role) for r in replicas for role in ROLES}
        if all(endpoints_of(s) == expected for s in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def test_both_replicas_serve_byte_identical_resources(stack: DemoStack, replicas: list[Replica]) -> None:
    expected = stack.addresses(stack.running_tasks(SERVICE))
    seen = identical_when_settled(replicas, expected)
    for role in ROLES:
        a, b = seen[("a", role)], seen[("b", role)]
        assert endpoints_of(a) == expected
        assert a == b, f"{role}: replicas differ: {_diff(a, b)}"
    # Replica a reads SNS envelopes, b bare EventBridge events: both are parsed.
    assert all(r.status().ready for r in replicas)


def test_status_shows_each_replicas_ecs_requests_by_operation(replicas: list[Replica]) -> None:
    status = replicas[0].status()
    requests = status.ecs_requests
    assert requests.by_operation["ListTasks"] >= 1 and requests.by_operation["DescribeTasks"] >= 1
    assert requests.last_minute >= 1 and requests.limit_per_second == 5 and requests.burst == 20 and not status.draining
    assert status.clusters[0].api_calls_total["ListTasks"] >= 1
    done = subprocess.run(
        [sys.executable, "-m", "controlplane", "status", "--admin", f"127.0.0.1:{replicas[0].admin_port}"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("ECS requests (this replica):"))
    assert "cap 5/s (burst 20)" in line and "ListTasks" in line and "DescribeTasks" in line


def test_events_in_different_orders_converge_to_identical_resources(stack: DemoStack, replicas: list[Replica]) -> None:
    events_before = {r.name: _applied_events(r) for r in replicas}
    revision = stack.register(labels={**CALLS_ITSELF, "xds.timeout.route": "7s"})
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, taskDefinition=revision, desiredCount=3)
    _wait(lambda: {t["taskDefinitionArn"] for t in stack.running_tasks(SERVICE)} == {revision} and len(stack.running_tasks(SERVICE)) == 3, 90)
    expected = stack.addresses(stack.running_tasks(SERVICE))
    seen = identical_when_settled(replicas, expected)
    for role in ROLES:
        assert endpoints_of(seen[("a", role)]) == expected
        assert seen[("a", role)] == seen[("b", role)]
    from envoy.config.route.v3 import route_pb2

    (route,) = [r for vh in route_pb2.RouteConfiguration.FromString(seen[("a", "edge")]["RDS"]["edge"]).virtual_hosts for r in vh.routes if r.route.cluster == SERVICE]
    assert route.route.timeout.seconds == 7  # the new revision's settings, on both replicas
    # Each replica got there through its own queue's events, not through a resync.
    assert all(_applied_events(r) > events_before[r.name] for r in replicas)


def test_an_envoy_moves_between_replicas_without_failed_calls_or_new_versions(stack: DemoStack, replicas: list[Replica]) -> None:
    envoy = _edge_envoy(stack, replicas)
    try:
        envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=30)
        traffic = SteadyTraffic(envoy.target, max_seconds=150).start()
        first = _serving(replicas, envoy)
        before = _envoy_state(envoy)
        try:
            # Drained (SIGTERM): the replica closes the stream and stops listening; the Envoy moves.
            first.terminate()
            second = _wait(lambda: _serving([r for r in replicas if r is not first], envoy), 30, lambda: _streams(replicas))
            assert first.wait_exit(30) == 0
            assert any(e["event"] == "xds.drain_finished" and e["closed"] >= 1 for e in first.log())
            after_drain = _envoy_state(envoy)
            # The drained replica is replaced (its own new queue on the topic, the same address);
            # then the one serving the Envoy crashes.
            replacement = Replica(stack, f"{first.name}2", replica_queue(stack, f"replica-{first.name}2"), REPLICA_FLAGS, xds_port=first.xds_port)
            replicas.append(replacement.start())
            second.kill()
            _wait(lambda: _serving([replacement], envoy), 30, lambda: _streams(replicas))
            time.sleep(1.0)
        finally:
            report = traffic.stop()
        after_kill = _envoy_state(envoy)
    finally:
        envoy.stop()
    assert report.calls > 50 and report.failures == []
    # Envoy took each new replica's first answers as nothing new: no cluster or listener was added,
    # modified or warmed, and the versions it runs are the ones it had.
    for state in (after_drain, after_kill):
        assert state["versions"] == before["versions"]
        assert {k: state["stats"][k] for k in UNCHANGED} == {k: before["stats"][k] for k in UNCHANGED}
    assert after_kill["stats"]["cluster_manager.cds.update_success"] > before["stats"]["cluster_manager.cds.update_success"]


UNCHANGED = (
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "listener_manager.listener_create_success",
)


def _edge_envoy(stack: DemoStack, replicas: list[Replica]) -> EnvoyProcess:
    listen_port = free_port()
    config = edge_bootstrap(node_id="edge-moving", xds=[r.xds for r in replicas], listen_address="127.0.0.1", listen_port=listen_port)
    envoy = EnvoyProcess("edge-moving", 0, stack.work_dir, listen_port=listen_port, config=config)
    stack.envoys.append(envoy)
    return envoy.start()


def _serving(replicas: list[Replica], envoy: EnvoyProcess) -> Replica | None:
    """The replica whose stream of this Envoy has every type ACKed."""
    for replica in replicas:
        try:
            proxies = replica.proxies()
        except Exception:  # noqa: BLE001 - a replica going away
            continue
        for proxy in proxies:
            acked = {t.type for t in proxy.types if t.version_acked and t.version_acked == t.version_sent}
            if proxy.node_id == envoy.node_id and {"CDS", "EDS", "LDS", "RDS"} <= acked:
                return replica
    return None


def _envoy_state(envoy: EnvoyProcess) -> dict[str, Any]:
    dump = envoy.config_dump()
    versions: dict[str, str] = {}
    for config in dump["configs"]:
        for cluster in config.get("dynamic_active_clusters", []):
            versions["cluster/" + cluster["cluster"]["name"]] = cluster["version_info"]
        for listener in config.get("dynamic_listeners", []):
            versions["listener/" + listener["name"]] = listener["active_state"]["version_info"]
    stats = {}
    for line in envoy.admin("/stats?filter=^(cluster_manager|listener_manager)\\.").splitlines():
        name, _, value = line.partition(": ")
        if value.strip().isdigit():
            stats[name] = int(value)
    return {"versions": versions, "stats": stats}


def _diff(a: dict[str, dict[str, bytes]], b: dict[str, dict[str, bytes]]) -> list[str]:
    """The differing resources as JSON lines, for the failure message."""
    import difflib

    from google.protobuf import json_format

    from controlplane.demo.xds_proxy import MESSAGES
    from controlplane.xds.any_types import load_any_types

    load_any_types()

    lines: list[str] = []
    for kind in sorted(set(a) | set(b)):
        for name in sorted(set(a.get(kind, {})) | set(b.get(kind, {}))):
            x, y = a.get(kind, {}).get(name), b.get(kind, {}).get(name)
            if x != y:
                as_json = [json.dumps(json_format.MessageToDict(MESSAGES[kind].FromString(v)), indent=1, sort_keys=True).splitlines() if v else [] for v in (x, y)]
                lines += [f"{kind}/{name}:", *difflib.unified_diff(as_json[0], as_json[1], lineterm="", n=1)]
    return lines


def _applied_events(replica: Replica) -> int:
    return sum(int(e.get("applied") or 0) for e in replica.log() if e.get("event") == "discovery.synced" and e.get("kind") == "events")


def _streams(replicas: list[Replica]) -> str:
    """Who serves whom, for a failure message."""
    found = {}
    for replica in replicas:
        try:
            found[replica.name] = [(p.node_id, [(t.type, t.version_sent, t.version_acked, t.nacks) for t in p.types]) for p in replica.proxies()]
        except Exception as error:  # noqa: BLE001
            found[replica.name] = [type(error).__name__]
    return json.dumps(found)


def _wait(probe: Any, timeout: float, explain: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing after {timeout} s" + (f": {explain()}" if explain else ""))
        time.sleep(0.2)
