"""Traffic policy from labels, proven with real parts: local ECS tasks (route guide processes whose
behaviour is set per task definition), the control plane, a real Envoy and real gRPC calls.

One stack for the module. Every service has its own host (`<name>.local`), set as :authority.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

HEALTH_INTERVAL_S = 1.0
UNHEALTHY_THRESHOLD = 2


def _host(service: str) -> dict[str, str]:
    return {"xds.route.hosts": f"{service}.local"}


def _services(work_dir: Path) -> dict[str, dict[str, Any]]:
    """ECS service -> register() arguments. Several ECS services may declare one mesh service."""
    return {
        # 90/10 canary between two ECS services; orders' task also declares a rate-limited service
        # on the same port (indexed labels).
        "orders": dict(service="orders", labels={**_host("orders"), "xds.route.weights": "orders:90,orders-next:10",
                       "xds.1.service": "limited", "xds.1.port": "50051", "xds.1.route.hosts": "limited.local",
                       "xds.1.ratelimit.average": "5", "xds.1.ratelimit.period": "10s"}),
        "orders-next": dict(service="orders-next", labels={"xds.route.enabled": "false"}),
        # least request over a fast and a slow task; they also serve the method-routing and
        # circuit-breaker services (indexed labels).
        "lr-fast": dict(service="lr", labels={**_host("lr"), "xds.lb.policy": "least_request",
                        "xds.1.service": "getter", "xds.1.port": "50051", "xds.1.route.hosts": "methods.local",
                        "xds.1.route.method": "/routeguide.RouteGuide/GetFeature"}),
        "lr-slow": dict(service="lr", labels={**_host("lr"), "xds.lb.policy": "least_request",
                        "xds.1.service": "cb", "xds.1.port": "50051", "xds.1.route.hosts": "cb.local",
                        "xds.1.circuit-breaker.max-requests": "2", "xds.1.circuit-breaker.max-pending-requests": "1"},
                        environment={"ROUTEGUIDE_LATENCY_MS": "40"}),
        # active gRPC health checks; each task reads its own health file
        **{
            f"hc-{side}": dict(service="hc", labels={**_host("hc"), "xds.health.check": "grpc",
                               "xds.health.grpc-service": "routeguide.RouteGuide", "xds.health.interval": "1s",
                               "xds.health.timeout": "500ms", "xds.health.unhealthy-threshold": str(UNHEALTHY_THRESHOLD),
                               "xds.health.healthy-threshold": "1"},
                               environment={"ROUTEGUIDE_HEALTH_FILE": str(work_dir / f"health-{side}")})
            for side in ("a", "b")
        },
        # outlier detection ejects a task that fails every call; the good one also serves ListFeatures
        "od-good": dict(service="od", labels={**_host("od"), "xds.outlier.consecutive-5xx": "3", "xds.outlier.interval": "1s",
                        "xds.outlier.ejection-time": "60s", "xds.1.service": "lister", "xds.1.port": "50051",
                        "xds.1.route.hosts": "methods.local", "xds.1.route.method": "/routeguide.RouteGuide/ListFeatures"}),
        "od-bad": dict(service="od", labels={**_host("od"), "xds.outlier.consecutive-5xx": "3", "xds.outlier.interval": "1s",
                       "xds.outlier.ejection-time": "60s"},
                       environment={"ROUTEGUIDE_FAIL_FRACTION": "1", "ROUTEGUIDE_FAIL_STATUS": "UNAVAILABLE"}),
        # the same by failure percentage alone (the trigger proxyless clients apply too), no retries
        **{
            f"fp-{side}": dict(service="fp", labels={**_host("fp"), "xds.retry.attempts": "0", "xds.outlier.failure-percent": "50",
                               "xds.outlier.failure-min-requests": "5", "xds.outlier.failure-min-tasks": "2",
                               "xds.outlier.interval": "1s", "xds.outlier.ejection-time": "60s"},
                               environment=environment)
            for side, environment in (("good", {}), ("bad", {"ROUTEGUIDE_FAIL_FRACTION": "1", "ROUTEGUIDE_FAIL_STATUS": "UNAVAILABLE"}))
        },
        # retries on UNAVAILABLE while one of two tasks fails half of its calls
        "rt-good": dict(service="rt", labels={**_host("rt"), "xds.retry.on": "unavailable,connect-failure", "xds.retry.attempts": "3"}),
        "rt-flaky": dict(service="rt", labels={**_host("rt"), "xds.retry.on": "unavailable,connect-failure", "xds.retry.attempts": "3"},
                         environment={"ROUTEGUIDE_FAIL_FRACTION": "0.5", "ROUTEGUIDE_FAIL_STATUS": "UNAVAILABLE"}),
    }


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="policies", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        for side in ("a", "b"):
            (stack.work_dir / f"health-{side}").write_text("SERVING\n")
        for ecs_service, arguments in _services(stack.work_dir).items():
            stack.create_service(ecs_service, stack.register(family=ecs_service, **arguments), 1)
        for ecs_service in _services(stack.work_dir):
            stack.wait_for_running(ecs_service, 1)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-policies")
    for cluster, ecs_services in {
        "orders": ["orders"], "orders-next": ["orders-next"], "lr": ["lr-fast", "lr-slow"], "hc": ["hc-a", "hc-b"],
        "od": ["od-good", "od-bad"], "fp": ["fp-good", "fp-bad"], "rt": ["rt-good", "rt-flaky"], "getter": ["lr-fast"], "lister": ["od-good"],
        "cb": ["lr-slow"], "limited": ["orders"],
    }.items():
        envoy.wait_for_hosts(cluster, _addresses(stack, *ecs_services), timeout=30)
    return envoy


def _addresses(stack: DemoStack, *ecs_services: str) -> set[str]:
    return {a for s in ecs_services for a in stack.addresses(stack.running_tasks(s))}


def _address(stack: DemoStack, ecs_service: str) -> str:
    (address,) = _addresses(stack, ecs_service)
    return address


def _channel(envoy: EnvoyProcess, host: str) -> grpc.Channel:
    return grpc.insecure_channel(
        envoy.target,
        options=[("grpc.default_authority", host), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)],
    )


def _calls(envoy: EnvoyProcess, host: str, n: int, *, timeout: float = 5.0) -> tuple[Counter[str], Counter[grpc.StatusCode]]:
    """n sequential GetFeature calls: answers per task address, failures per status."""
    answered: Counter[str] = Counter()
    failed: Counter[grpc.StatusCode] = Counter()
    with _channel(envoy, host) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(n):
            try:
                answered[stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=timeout).served_by.address] += 1
            except grpc.RpcError as error:
                failed[error.code()] += 1
    return answered, failed


DETAILS: list[str] = []  # failure details of the last concurrent calls, shown when an assertion fails


def _concurrent(envoy: EnvoyProcess, host: str, n: int) -> tuple[Counter[str], Counter[grpc.StatusCode]]:
    """n GetFeature calls started at once on one channel."""
    answered: Counter[str] = Counter()
    failed: Counter[grpc.StatusCode] = Counter()
    with _channel(envoy, host) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        futures = [stub.GetFeature.future(pb.Point(latitude=1, longitude=2), timeout=10) for _ in range(n)]
        for future in futures:
            try:
                answered[future.result().served_by.address] += 1
            except grpc.RpcError as error:
                failed[error.code()] += 1
                metadata = dict(error.initial_metadata() or ()) | dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
                DETAILS.append(f"{error.details()} overloaded={metadata.get('x-envoy-overloaded')}")
    return answered, failed


def _wait(condition: Any, timeout: float, what: str, step: float = 0.1) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - started


def test_a_90_10_canary_split_between_two_ecs_services(stack: DemoStack, envoy: EnvoyProcess) -> None:
    answered, failed = _calls(envoy, "orders.local", 2000)
    assert not failed, failed
    stable, canary = answered[_address(stack, "orders")], answered[_address(stack, "orders-next")]
    assert 1700 <= stable <= 1900 and 100 <= canary <= 300, answered


def test_least_request_sends_fewer_calls_to_the_slow_task(stack: DemoStack, envoy: EnvoyProcess) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: _calls(envoy, "lr.local", 60), range(4)))
    answered = sum((a for a, _ in results), Counter())
    assert not sum((f for _, f in results), Counter())
    fast, slow = answered[_address(stack, "lr-fast")], answered[_address(stack, "lr-slow")]
    assert fast + slow == 240 and fast > 1.5 * slow, answered


def test_routing_by_grpc_method_reaches_two_ecs_services(stack: DemoStack, envoy: EnvoyProcess) -> None:
    with _channel(envoy, "methods.local") as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        getter = {stub.GetFeature(pb.Point(latitude=1, longitude=1), timeout=5).served_by.address for _ in range(5)}
        rectangle = pb.Rectangle(lo=pb.Point(latitude=1, longitude=1), hi=pb.Point(latitude=2, longitude=2))
        lister = {f.served_by.address for _ in range(5) for f in stub.ListFeatures(rectangle, timeout=5)}
        with pytest.raises(grpc.RpcError) as unrouted:
            stub.RecordRoute(iter([pb.Point(latitude=1, longitude=1)]), timeout=5)
    assert getter == {_address(stack, "lr-fast")}
    assert lister == {_address(stack, "od-good")}
    assert unrouted.value.code() is grpc.StatusCode.UNIMPLEMENTED  # no route for that method on this host


def test_a_not_serving_task_stops_receiving_calls_and_comes_back(stack: DemoStack, envoy: EnvoyProcess) -> None:
    a, b = _address(stack, "hc-a"), _address(stack, "hc-b")
    health_file = stack.work_dir / "health-a"
    # interval x unhealthy threshold, plus Envoy's 1 s update merge window, the task's 0.2 s file
    # poll and a health check timeout of slack.
    limit_s = HEALTH_INTERVAL_S * UNHEALTHY_THRESHOLD + 1.0 + 0.2 + 0.5
    with _channel(envoy, "hc.local") as channel:
        stub = pb_grpc.RouteGuideStub(channel)

        def call() -> str:
            return str(stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5).served_by.address)

        flipped = time.monotonic()
        health_file.write_text("NOT_SERVING\n")
        try:
            last_a, recent = flipped, []
            while len(recent) < 40 or a in recent[-40:]:
                address = call()
                recent.append(address)
                if address == a:
                    last_a = time.monotonic()
                assert time.monotonic() - flipped < limit_s + 3, "the NOT_SERVING task kept receiving calls"
                time.sleep(0.02)
            assert last_a - flipped <= limit_s, f"last call to the NOT_SERVING task {last_a - flipped:.1f}s after the flip"
            assert "failed_active_hc" in envoy.hosts("hc").get(a, "")
        finally:
            health_file.write_text("SERVING\n")
        back = time.monotonic()
        while call() != a:
            assert time.monotonic() - back < HEALTH_INTERVAL_S * 1 + 1.0 + 0.2 + 1.5, "the SERVING task did not come back"
            time.sleep(0.02)
    answered, failed = _calls(envoy, "hc.local", 40)
    assert not failed and answered[a] >= 15 and answered[b] >= 15, answered


def test_outlier_detection_ejects_a_task_that_fails_every_call(stack: DemoStack, envoy: EnvoyProcess) -> None:
    bad = _address(stack, "od-bad")
    with _channel(envoy, "od.local") as channel:
        stub = pb_grpc.RouteGuideStub(channel)

        def ejected() -> bool:
            try:
                stub.GetFeature(pb.Point(latitude=1, longitude=2), timeout=5)
            except grpc.RpcError:
                pass
            return "failed_outlier_check" in envoy.hosts("od").get(bad, "")

        _wait(ejected, 10, f"{bad} ejected", step=0.02)
    answered, failed = _calls(envoy, "od.local", 300)
    assert answered[_address(stack, "od-good")] >= 297, (answered, failed)


def test_failure_percentage_ejects_a_task_that_fails_every_call(stack: DemoStack, envoy: EnvoyProcess) -> None:
    bad = _address(stack, "fp-bad")

    def ejected() -> bool:
        _calls(envoy, "fp.local", 20)  # about 10 fail on the bad task: 100% of its calls, over the 5 needed
        return "failed_outlier_check" in envoy.hosts("fp").get(bad, "")

    _wait(ejected, 10, f"{bad} ejected")
    stats = envoy.admin("/stats?filter=^cluster.fp.outlier_detection.ejections_enforced_failure_percentage$")
    assert int(stats.split(":")[-1]) >= 1, stats  # ejected by this trigger (the only one set)
    answered, failed = _calls(envoy, "fp.local", 100)
    assert answered[_address(stack, "fp-good")] == 100 and not failed, (answered, failed)


def test_retries_on_unavailable_hide_a_flaky_task(stack: DemoStack, envoy: EnvoyProcess) -> None:
    answered, failed = _calls(envoy, "rt.local", 200)
    assert not failed, failed
    assert answered[_address(stack, "rt-flaky")] > 20, answered  # the flaky task still answers half its calls
    stats = envoy.admin("/stats?filter=^cluster.rt.upstream_rq_retry$")
    assert int(stats.split(":")[-1]) > 20, stats


def test_the_circuit_breaker_rejects_calls_above_its_limit_with_unavailable(stack: DemoStack, envoy: EnvoyProcess) -> None:
    DETAILS.clear()
    answered, failed = _concurrent(envoy, "cb.local", 20)
    # At most 2 calls in flight and 1 waiting for a connection; calls beyond are rejected at once (a
    # loaded machine may spread the 20 starts over more than one 40 ms call, so no exact count).
    assert sum(answered.values()) >= 1 and failed[grpc.StatusCode.UNAVAILABLE] >= 5, (answered, failed)
    assert set(failed) == {grpc.StatusCode.UNAVAILABLE}, failed
    # Envoy marks a call it rejected on a circuit breaker with `x-envoy-overloaded: true`.
    assert any("overloaded=true" in detail for detail in DETAILS), sorted(set(DETAILS))[:5]


def test_the_rate_limit_rejects_calls_above_it_with_resource_exhausted(stack: DemoStack, envoy: EnvoyProcess) -> None:
    answered, failed = _calls(envoy, "limited.local", 15)
    # A bucket of 5 tokens refilled every 10 s: the first 5 calls pass, the rest are rejected.
    assert sum(answered.values()) == 5 and failed == {grpc.StatusCode.RESOURCE_EXHAUSTED: 10}, (answered, failed)
    answered, failed = _calls(envoy, "orders.local", 20)
    assert not failed  # other routes are not limited


def test_malformed_and_unknown_labels_disable_or_warn_about_one_service(stack: DemoStack, envoy: EnvoyProcess) -> None:
    stack.create_service("broken", stack.register(family="broken", service="broken", labels={**_host("broken"), "xds.lb.policy": "fastest"}), 1)
    stack.create_service("typo", stack.register(family="typo", service="typo", labels={**_host("typo"), "xds.retry.attemps": "3"}), 1)
    stack.wait_for_running("broken", 1)
    stack.wait_for_running("typo", 1)

    def events(kind: str, service: str) -> list[dict[str, Any]]:
        return [e for e in stack.control_plane_log() if e.get("event") == kind and e.get("service") == service]

    _wait(lambda: events("labels.invalid", "broken") and events("labels.warning", "typo"), 15, "label events")
    invalid = events("labels.invalid", "broken")[0]
    assert (invalid["label"], invalid["value"]) == ("xds.lb.policy", "fastest")
    assert "broken:1" in invalid["error"] and "expected one of round_robin, least_request, random, ring_hash, maglev" in invalid["error"]
    warning = events("labels.warning", "typo")[0]
    assert warning["label"] == "xds.retry.attemps" and "typo:1" in warning["error"] and "unknown label" in warning["error"]
    envoy.wait_for_hosts("typo", _addresses(stack, "typo"), timeout=15)  # served with the labels we understand
    assert "broken" not in {line.split("::")[0] for line in envoy.admin("/clusters").splitlines()}
    for host in ("typo.local", "orders.local", "od.local"):
        answered, failed = _calls(envoy, host, 10)
        assert sum(answered.values()) == 10 and not failed, (host, failed)


def test_render_prints_the_resources_and_problems_of_the_live_cluster(stack: DemoStack, envoy: EnvoyProcess) -> None:
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "render", "--role", "edge", "--cluster", stack.cluster, "--format", "json"],
        capture_output=True, text=True, timeout=60, env=stack.aws_env(),
    )
    rendered = json.loads(result.stdout)
    edge = rendered["roles"]["edge"]
    assert {"orders", "orders-next", "lr", "hc", "od", "rt", "getter", "lister", "cb", "limited"} <= set(edge["CDS"])
    assert edge["CDS"]["hc"]["health_checks"][0]["grpc_health_check"]["service_name"] == "routeguide.RouteGuide"
    errors = [p for p in rendered["problems"] if p["severity"] == "error"]
    # The malformed service of the previous test is still there: exit status 1, and it is named.
    assert result.returncode == 1 and [p["label"] for p in errors] == ["xds.lb.policy"], result.stderr
    assert "broken:1" in result.stderr
