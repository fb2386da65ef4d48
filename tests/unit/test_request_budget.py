"""A replica's ECS request budget: the token bucket caps requests (retries included) and counts
them by operation; discovery's periodic reads are jittered per replica."""

from __future__ import annotations

import random
from typing import Any

import boto3
import pytest
from botocore.config import Config

from controlplane.discovery.cadence import Cadence
from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.request_budget import RequestBudget, TokenBucket
from controlplane.discovery.state import ClusterState
from controlplane.discovery.watch import ClusterWatch
from controlplane.localecs import LocalEcsServer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_passes_then_requests_wait_for_the_rate() -> None:
    t = FakeTime()
    bucket = TokenBucket(rate=5.0, burst=3, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.2, 0.2, 0.2])  # 5 a second once the burst is spent
    t.now += 10  # idle: the bucket refills, to its burst and no more
    assert [bucket.acquire() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.2])


def test_sixty_seconds_of_requests_stay_within_the_cap() -> None:
    t = FakeTime()
    budget = RequestBudget(rate=2.0, burst=5, clock=t.clock, sleep=t.sleep)
    start = t.now
    while t.now - start < 60:
        budget.spend("DescribeTasks")
    # burst + rate x 60 s, whatever the callers asked for
    assert budget.requests["DescribeTasks"] <= 5 + 2 * 60 + 1
    assert budget.per_minute() <= 5 + 2 * 60 + 1
    assert budget.waited_seconds == pytest.approx(sum(t.slept))


@pytest.fixture
def local(tmp_path: Any) -> Any:
    with LocalEcsServer(processes=False, log_dir=str(tmp_path)) as server:
        yield server


def test_every_http_request_of_a_boto3_client_is_counted_retries_included(local: LocalEcsServer) -> None:
    ecs = boto3.client(
        "ecs", endpoint_url=local.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )
    seen: list[tuple[str, float]] = []
    budget = RequestBudget(rate=1000.0, burst=1000, on_request=lambda operation, waited: seen.append((operation, waited)))
    budget.attach(ecs)
    ecs.create_cluster(clusterName="c")
    ecs.list_tasks(cluster="c")
    local.ecs.inject_faults(operation="DescribeTasks", error="ThrottlingException", rate=1.0)
    with pytest.raises(ecs.exceptions.ClientError):
        ecs.describe_tasks(cluster="c", tasks=["t"])
    # Three attempts of the throttled call: AWS counts each one against the account's limit.
    assert budget.by_operation() == {"CreateCluster": 1, "ListTasks": 1, "DescribeTasks": 3}
    assert [operation for operation, _ in seen] == ["CreateCluster", "ListTasks", "DescribeTasks", "DescribeTasks", "DescribeTasks"]
    assert budget.per_minute() == 5


def test_a_capped_client_waits_instead_of_exceeding_the_rate(local: LocalEcsServer) -> None:
    ecs = boto3.client("ecs", endpoint_url=local.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    slept: list[float] = []
    budget = RequestBudget(rate=4.0, burst=2, sleep=slept.append)  # sleeps recorded, not taken
    budget.attach(ecs)
    for _ in range(6):
        ecs.list_clusters()
    assert budget.requests["ListClusters"] == 6
    assert len(slept) == 4 and all(s > 0 for s in slept)  # two went at once, four had to wait


class EventMode:
    failing = False


def _next_read(seed: int, jitter: float) -> float:
    watch = ClusterWatch(["prod"], ClusterReader(ecs=None, ec2=None), lambda views: None, Cadence(resync_interval=300.0, jitter=jitter), rng=random.Random(seed))
    watch._events = EventMode()  # type: ignore[assignment]  # event mode: the next full read is the resync
    watch._views["prod"] = ClusterState("prod", (), {}, 0.0)
    watch._schedule("prod")
    return watch._next_read["prod"]


def test_resyncs_are_jittered_per_replica() -> None:
    import time

    now = time.monotonic()
    delays = [_next_read(seed, 0.1) - now for seed in range(20)]
    assert all(270 - 1 <= d <= 330 + 1 for d in delays)
    assert max(delays) - min(delays) > 10  # twenty replicas do not read ECS in step
    assert all(abs(_next_read(seed, 0.0) - now - 300) < 1 for seed in range(3))
