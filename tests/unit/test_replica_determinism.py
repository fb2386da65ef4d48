"""Stateless replicas decide the same: what a proxy receives is a function of ECS's state, never of
the order events arrived in, of duplicates, of which replica read what when, or of local time.

Real parts: the local ECS runs a service through a rolling deployment and a stopped task, its
events go to a queue; "replicas" are ClusterReaders fed those events in any order (hypothesis
permutes, duplicates and batches them), and one that only did a full read (it started later).
"""

from __future__ import annotations

import json
import random
import time
from typing import Any, Mapping

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.cache.snapshot import build_snapshot
from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.sqs_events import TaskChange, parse_message
from controlplane.discovery.state import ClusterState
from controlplane.discovery.taskdefs import TaskDefinitionCache
from controlplane.localecs import LocalEcsServer
from controlplane.model.build import build_mesh
from controlplane.proxy.roles import EdgeRole, SidecarRole
from controlplane.translate import translate
from controlplane.xds.types import ORDER

from .builders import cluster_state, task, task_definition

CLUSTER = "det"
ROLES = (EdgeRole("127.0.0.1", 10000), SidecarRole("orders"))


def _labels(revision: int) -> list[dict[str, str]]:
    labels = {"xds.service": "orders", "xds.port": "50051", "xds.protocol": "grpc", "xds.route.prefix": "/orders/"}
    if revision == 2:
        labels["xds.timeout.route"] = "5s"  # the newest revision's settings must win on every replica
    return [{"name": k, "value": v} for k, v in labels.items()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: Any) -> Any:
    """The events of a rolling deployment (revision 1 -> 2) plus a stopped task, and ECS's answer now."""
    server = LocalEcsServer(
        provisioning_seconds=0.02, pending_seconds=0.02, deactivating_seconds=0.05, healthy_after_running_seconds=0.2, processes=False,
        event_queues=["replica"], log_dir=str(tmp_path_factory.mktemp("logs")), seed=7,
    ).start()
    ecs = boto3.client("ecs", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    sqs = boto3.client("sqs", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    try:
        ecs.create_cluster(clusterName=CLUSTER)
        arns = []
        for revision in (1, 2):
            arns.append(ecs.register_task_definition(
                family="orders", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                containerDefinitions=[{
                    "name": "app", "image": "x", "essential": True, "portMappings": [{"containerPort": 50051}],
                    "dockerLabels": {d["name"]: d["value"] for d in _labels(revision)},
                }],
            )["taskDefinition"]["taskDefinitionArn"])
        ecs.create_service(cluster=CLUSTER, serviceName="orders", taskDefinition=arns[0], desiredCount=3, launchType="FARGATE",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": ["s"]}})
        _wait(lambda: _running(ecs) == {arns[0]: 3})
        ecs.update_service(cluster=CLUSTER, service="orders", taskDefinition=arns[1])
        _wait(lambda: _running(ecs) == {arns[1]: 3})
        victim = ecs.list_tasks(cluster=CLUSTER)["taskArns"][0]
        ecs.stop_task(cluster=CLUSTER, task=victim, reason="test")
        _wait(lambda: _running(ecs) == {arns[1]: 3} and victim not in ecs.list_tasks(cluster=CLUSTER)["taskArns"])
        time.sleep(0.3)  # the victim's last events (STOPPED)
        server.ecs.event_stream.flush()
        url = sqs.get_queue_url(QueueName="replica")["QueueUrl"]
        details: list[Mapping[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            for message in messages:
                parsed = parse_message(message["Body"])
                assert isinstance(parsed, TaskChange)
                details.append(parsed.detail)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        assert len(details) > 20
        yield ecs, details
    finally:
        server.close()


def _wait(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "local ECS did not get there"
        time.sleep(0.05)


def _running(ecs: Any) -> dict[str, int]:
    arns = ecs.list_tasks(cluster=CLUSTER)["taskArns"]
    counts: dict[str, int] = {}
    for t in ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"] if arns else []:
        if t["lastStatus"] == "RUNNING":
            counts[t["taskDefinitionArn"]] = counts.get(t["taskDefinitionArn"], 0) + 1
    return counts


def _differences(a: ClusterState, b: ClusterState) -> list[str]:
    """Field by field, what two replicas' views of the cluster disagree on."""
    import dataclasses

    found = [f"tasks {sorted(t.arn for t in a.tasks)} != {sorted(t.arn for t in b.tasks)}"] if [t.arn for t in a.tasks] != [t.arn for t in b.tasks] else []
    for x, y in zip(a.tasks, b.tasks):
        found += [f"{x.id}.{f.name}: {getattr(x, f.name)!r} != {getattr(y, f.name)!r}" for f in dataclasses.fields(x) if getattr(x, f.name) != getattr(y, f.name)]
    return found


def _bytes(views: list[ClusterState]) -> dict[str, dict[str, dict[str, bytes]]]:
    """What every role receives: resource bytes by type and name."""
    mesh = build_mesh(views)
    out = {}
    for role in ROLES:
        snapshot = build_snapshot(translate(mesh, role))
        out[role.key] = {t.short: {n: r.packed.value for n, r in snapshot.of(t).items()} for t in ORDER}
    return out


SHARED_DEFINITIONS = TaskDefinitionCache()


def _replica(ecs: Any) -> ClusterReader:
    return ClusterReader(ecs, None, SHARED_DEFINITIONS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), duplicates=st.floats(0, 0.5), batch=st.integers(1, 12))
def test_events_in_any_order_with_duplicates_give_the_same_view_and_bytes(recorded: Any, seed: int, duplicates: float, batch: int) -> None:
    ecs, details = recorded
    in_order = _replica(ecs)
    in_order.apply(CLUSTER, details)
    rng = random.Random(seed)
    shuffled = list(details) + [d for d in details if rng.random() < duplicates]
    rng.shuffle(shuffled)
    other = _replica(ecs)
    for start in range(0, len(shuffled), batch):
        other.apply(CLUSTER, shuffled[start : start + batch])
    assert _differences(other.state(CLUSTER), in_order.state(CLUSTER)) == []
    assert _bytes([other.state(CLUSTER)]) == _bytes([in_order.state(CLUSTER)])


def test_a_replica_fed_by_events_and_one_that_only_read_ecs_serve_the_same_bytes(recorded: Any) -> None:
    ecs, details = recorded
    by_events = _replica(ecs)
    by_events.apply(CLUSTER, details)
    late = _replica(ecs)
    late.read(CLUSTER)  # started after every event: one full read
    # An event's task detail and DescribeTasks say the same about a task (health aside: events carry none).
    assert _differences(by_events.state(CLUSTER), late.state(CLUSTER)) == []
    served = _bytes([late.state(CLUSTER)])
    assert _bytes([by_events.state(CLUSTER)]) == served
    # The newest revision's settings win on both: the route carries revision 2's timeout.
    assert b"orders" in served["edge/127.0.0.1:10000"]["RDS"]["edge"]
    # And the event-fed replica's next resync changes nothing.
    by_events.read(CLUSTER)
    assert _bytes([by_events.state(CLUSTER)]) == served


def test_a_replica_that_missed_events_converges_at_its_next_resync(recorded: Any) -> None:
    ecs, details = recorded
    missed = _replica(ecs)
    missed.apply(CLUSTER, details[: len(details) // 3])  # then its queue lost the rest
    late = _replica(ecs)
    late.read(CLUSTER)
    missed.read(CLUSTER)
    assert _differences(missed.state(CLUSTER), late.state(CLUSTER)) == []
    assert _bytes([missed.state(CLUSTER)]) == _bytes([late.state(CLUSTER)])


@settings(max_examples=50, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_mesh_does_not_depend_on_the_order_tasks_or_clusters_are_listed_in(rng: random.Random) -> None:
    v1 = task_definition("orders", 1, labels={"xds.service": "orders", "xds.route.prefix": "/o/"})
    v2 = task_definition("orders", 2, labels={"xds.service": "orders", "xds.route.prefix": "/o/", "xds.timeout.route": "5s"})
    other = task_definition("zeta", 1, labels={"xds.service": "zeta", "xds.route.prefix": "/o/"})  # the same route: one owner
    tasks_a = [task(v1, "a1", "127.0.30.1"), task(v2, "a2", "127.0.30.2"), task(other, "a3", "127.0.30.3")]
    # The same address and port claimed twice (an address reused by a newer task): one rule picks.
    tasks_b = [task(v2, "b1", "127.0.31.1", cluster="west"), task(v1, "b2", "127.0.31.1", cluster="west", last_status="RUNNING")]
    tasks_b[0] = _started(tasks_b[0], 2000.0)
    tasks_b[1] = _started(tasks_b[1], 1000.0)
    views = [cluster_state(tasks_a, [v1, v2, other]), cluster_state(tasks_b, [v1, v2], cluster="west")]
    expected = build_mesh(views)
    shuffled = [ClusterState(v.cluster, tuple(rng.sample(v.tasks, len(v.tasks))), v.task_definitions, v.synced_at) for v in views]
    rng.shuffle(shuffled)
    mesh = build_mesh(shuffled)
    assert mesh == expected
    assert [s.name for s in mesh.services] == ["orders"] and mesh.problems  # zeta's clashing route is refused, whatever the order
    (orders,) = [s for s in mesh.services if s.name == "orders"]
    (reused,) = [e for e in orders.endpoints if e.address == "127.0.31.1"]
    assert reused.task_arn.endswith("/b1")  # the task started last holds the address


def _started(t: Any, at: float) -> Any:
    import dataclasses

    return dataclasses.replace(t, started_at=at)


def test_local_time_plays_no_part(recorded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ecs, details = recorded
    now = _replica(ecs)
    now.read(CLUSTER)
    before = _bytes([now.state(CLUSTER)])
    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)  # a replica whose clock is far off
    skewed = _replica(ecs)
    skewed.read(CLUSTER)
    assert _bytes([skewed.state(CLUSTER)]) == before
    assert json.dumps(sorted(before)) == json.dumps(sorted(_bytes([skewed.state(CLUSTER)])))


PROCESS_BYTES = """
import hashlib, json, sys
sys.path.insert(0, {root!r})
from tests.unit.builders import cluster_state, task, task_definition
from controlplane.cache.snapshot import build_snapshot
from controlplane.model.build import build_mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import translate
from controlplane.translate.edge_options import EdgeOptions
td = task_definition("orders", labels={{"xds.service": "orders", "xds.route.prefix": "/o/", "xds.route.hosts": "a.test,b.test"}})
mesh = build_mesh([cluster_state([task(td, "t1", "127.0.40.1"), task(td, "t2", "127.0.40.2")], [td])])
snapshot = build_snapshot(translate(mesh, EdgeRole("127.0.0.1", 10000), edge=EdgeOptions()))
print(json.dumps({{t.short: {{n: r.version for n, r in snapshot.of(t).items()}} for t in snapshot.resources}}, sort_keys=True))
"""


def test_every_process_serializes_the_same_configuration_to_the_same_bytes() -> None:
    """Replicas are separate processes: a map inside an Any (the access log's JSON format, a Struct)
    written in process-dependent order would give each replica its own bytes and versions."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    outputs = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", PROCESS_BYTES.format(root=root)], capture_output=True, text=True, env=env, timeout=120, check=True)
        outputs.add(result.stdout.strip().splitlines()[-1])
    assert len(outputs) == 1, outputs
