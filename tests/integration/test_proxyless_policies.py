"""A real proxyless gRPC client (grpcio's xDS client, `xds:///` targets) applies a service's
canary weights, retries and failure-percentage outlier detection, as the labels on the ECS task
definitions declare them."""

from __future__ import annotations

from typing import Iterator

import pytest

from controlplane.demo.stack import DemoStack

from . import xds_client

pytestmark = pytest.mark.integration

RETRY = {"xds.route.hosts": "rt.local", "xds.retry.on": "unavailable", "xds.retry.attempts": "2"}
# Eject a task failing half its calls or more (5 calls in a 1 s interval are enough) for 60 s; no retries hide failures.
OUTLIER = {
    "xds.route.hosts": "od.local", "xds.retry.attempts": "0", "xds.outlier.failure-percent": "50",
    "xds.outlier.failure-min-requests": "5", "xds.outlier.failure-min-tasks": "2", "xds.outlier.interval": "1s",
    "xds.outlier.ejection-time": "60s", "xds.outlier.max-ejection-percent": "50",
}
FAIL_EVERY_CALL = {"ROUTEGUIDE_FAIL_FRACTION": "1", "ROUTEGUIDE_FAIL_STATUS": "UNAVAILABLE"}
SERVICES: dict[str, dict[str, object]] = {
    # orders sends 10% of its calls to orders-next (a canary with no route of its own).
    "stable": dict(service="orders", labels={"xds.route.hosts": "orders.local", "xds.route.weights": "orders:90,orders-next:10"}),
    "canary": dict(service="orders-next", labels={"xds.route.enabled": "false"}),
    # rt: one task answers, the other fails every call with UNAVAILABLE; the client retries on it.
    "rt-good": dict(service="rt", labels=RETRY),
    "rt-bad": dict(service="rt", labels=RETRY, environment=FAIL_EVERY_CALL),
    # od: the same pair of tasks, with outlier detection instead of retries.
    "od-good": dict(service="od", labels=OUTLIER),
    "od-bad": dict(service="od", labels=OUTLIER, environment=FAIL_EVERY_CALL),
}


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="proxyless", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        for ecs_service, arguments in SERVICES.items():
            stack.create_service(ecs_service, stack.register(family=ecs_service, **arguments), 1)  # type: ignore[arg-type]
        for ecs_service in SERVICES:
            stack.wait_for_running(ecs_service, 1)
        stack.start_control_plane()
        # The edge sees every task of both services: the client's views below are complete.
        edge = stack.start_envoy("edge-proxyless")
        for cluster, ecs_services in {"orders": ["stable"], "orders-next": ["canary"], "rt": ["rt-good", "rt-bad"], "od": ["od-good", "od-bad"]}.items():
            edge.wait_for_hosts(cluster, {a for s in ecs_services for a in stack.addresses(stack.running_tasks(s))}, timeout=30)
        yield stack


def address(stack: DemoStack, ecs_service: str) -> str:
    (only,) = stack.addresses(stack.running_tasks(ecs_service))
    return only


def test_a_proxyless_client_splits_calls_by_the_canary_weights(stack: DemoStack) -> None:
    stable, canary = address(stack, "stable"), address(stack, "canary")
    # `client` declares no upstreams: its client may call every service.
    result = xds_client.run(stack.grpc_client_bootstrap("client-canary", "client"), "xds:///orders", 200, {stable, canary})
    assert not result["failures"], result
    assert set(result["answered"]) == {stable, canary}, result
    # gRPC picks a weighted cluster at random per call: the canary's count is Binomial(200, 0.1),
    # mean 20, sd 4.2. Outside 5..45 about 1 run in 100,000 by chance alone (10..35 failed 4 in
    # 1,000: too often for CI); without the weights the canary would get no call, or half of them.
    assert 5 <= result["answered"].get(canary, 0) <= 45, result


def test_a_proxyless_client_retries_a_call_that_fails_with_unavailable_on_another_task(stack: DemoStack) -> None:
    good = address(stack, "rt-good")
    result = xds_client.run(stack.grpc_client_bootstrap("client-retry", "client"), "xds:///rt", 100, {good})
    # Round robin sends about every other first try to the failing task; the retry goes to the next
    # task. Without the retry policy about 50 of these calls would fail with UNAVAILABLE.
    assert not result["failures"], result
    assert result["answered"] == {good: 100}, result


def test_a_proxyless_client_ejects_a_task_whose_calls_fail_by_failure_percentage(stack: DemoStack) -> None:
    good, bad = address(stack, "od-good"), address(stack, "od-bad")
    # A warm-up batch spreads calls over both tasks; 2.5 s later (two 1 s sweeps) another batch.
    result = xds_client.run(stack.grpc_client_bootstrap("client-outlier", "client"), "xds:///od", [100, 100], {good}, pause=2.5)
    warmup, later = result["batches"]
    # Round robin sent about half the warm-up to the failing task, and nothing retried them: it was in
    # use (not ejected by luck before a call) and failed 100% of its calls, over the 50% threshold.
    assert sum(warmup["failures"].values()) >= 20, result
    assert set(warmup["answered"]) == {good}, result
    # Ejected for 60 s, so the later batch reaches the good task only (without ejection about 50 fail).
    assert later["answered"].get(good, 0) >= 90 and bad not in later["answered"], result
