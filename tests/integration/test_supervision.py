"""The pipeline survives an exception in the model: the control plane keeps serving the last good
config, says so (`controlplane status`, /metrics, health), and later changes still reach Envoy.

The control plane runs in-process with a mesh builder that raises whenever a task of the ECS
service `poison` is in view (constructor injection: the product's own build_mesh otherwise)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Callable, Coroutine, Iterable, Iterator, TypeVar

import boto3
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controlplane.app import ControlPlane
from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import REGION, DemoStack
from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.model.limits import Limits
from controlplane.model.mesh import Mesh
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.settings import Settings

pytestmark = pytest.mark.integration
T = TypeVar("T")
SERVICE = "routeguide"
POISON = "poison"
WINDOW = 3.0  # seconds the served config may go unconfirmed before health says NOT_SERVING


def poisoned_build(views: Iterable[ClusterState], prefix: str, limits: Limits, *args: Any, **kwargs: Any) -> Mesh:
    views = list(views)
    if any(task.service_name == POISON for view in views for task in view.tasks):
        raise ArithmeticError("injected: the model cannot build service poison")
    return build_mesh(views, prefix, limits, *args, **kwargs)


class InProcessControlPlane:
    """A ControlPlane on its own event loop in a thread, so a test can inject its collaborators."""

    def __init__(self, make: Callable[[], ControlPlane]) -> None:
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="controlplane", daemon=True)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def __enter__(self) -> ControlPlane:
        self._thread.start()

        async def start() -> ControlPlane:
            plane = self._make()
            await plane.start()
            return plane

        self.plane = self.run(start())
        return self.plane

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.plane.stop(0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="supervised", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 2)
        stack.wait_for_running(SERVICE, 2)
        yield stack


@pytest.fixture(scope="module")
def plane(stack: DemoStack) -> Iterator[ControlPlane]:
    def client(name: str) -> Any:
        return boto3.client(name, endpoint_url=stack.ecs_url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")

    settings = Settings(
        clusters=[stack.cluster], region=REGION, xds_port=0, admin_port=0, metrics_port=0, dashboard_port=None,
        poll_interval_seconds=0.5, readiness_stale_after_seconds=WINDOW,
    )
    make = lambda: ControlPlane(  # noqa: E731
        settings, client("ecs"), client("ec2"), client("sqs"), client("ssm"), mesh_builder=poisoned_build
    )
    with InProcessControlPlane(make) as plane:
        yield plane


def wait_for(probe: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout:.0f}s")
        time.sleep(0.1)


def status(plane: ControlPlane) -> api.Status:
    with grpc.insecure_channel(f"127.0.0.1:{plane.admin_port}") as channel:
        return admin_pb2_grpc.AdminStub(channel).GetStatus(api.GetStatusRequest(), timeout=10)


def health(plane: ControlPlane) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{plane.admin_port}") as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status)


def status_cli(plane: ControlPlane, *, ready: bool) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "status", "--admin", f"127.0.0.1:{plane.admin_port}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == (0 if ready else 3), result.stderr  # 3: not ready (status as a readiness probe)
    return result.stdout


def build_failures(plane: ControlPlane) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{plane.metrics_port}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        for line in response.read().decode().splitlines():
            if line.startswith('controlplane_pipeline_failures_total{stage="build"}'):
                return float(line.split()[-1])
    return 0.0


def test_the_loop_survives_a_model_exception_reports_it_and_recovers(stack: DemoStack, plane: ControlPlane) -> None:
    envoy = EnvoyProcess("edge-supervised", plane.xds_port or 0, stack.work_dir)
    stack.envoys.append(envoy)
    envoy.start()
    first = stack.addresses(stack.running_tasks(SERVICE))
    envoy.wait_for_hosts(SERVICE, first, timeout=20)
    assert health(plane) == health_pb2.HealthCheckResponse.SERVING
    assert build_failures(plane) == 0

    # A task the model cannot build: the build fails, the last good config stays served.
    stack.create_service(POISON, stack.register(family=POISON, service=POISON, labels={"xds.route.prefix": "/poison/"}), 1)
    stack.wait_for_running(POISON, 1)
    degraded = wait_for(lambda: (s := status(plane)).degraded and s, "degraded status")
    (failure,) = degraded.failures
    assert (failure.stage, failure.error) == ("build", "ArithmeticError: injected: the model cannot build service poison")
    assert build_failures(plane) >= 1

    # Discovery goes on reading ECS (each new view fails to build again); Envoy keeps the last good config.
    attempts = failure.consecutive
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=3)
    three = stack.addresses(stack.wait_for_running(SERVICE, 3))
    wait_for(lambda: status(plane).failures[0].consecutive > attempts, "a build attempt of the scaled view")
    assert envoy.healthy_hosts(SERVICE) == first

    # Unconfirmed for longer than the window: not ready, said by health and by `controlplane status`.
    wait_for(lambda: health(plane) == health_pb2.HealthCheckResponse.NOT_SERVING, "NOT_SERVING", timeout=WINDOW + 20)
    text = status_cli(plane, ready=False)
    assert "ready=false  DEGRADED" in text
    assert "build failing since" in text and "serving the last good config: ArithmeticError: injected" in text

    # The poison goes away: the pipeline recovers and the change made meanwhile reaches Envoy.
    stack.ecs.update_service(cluster=stack.cluster, service=POISON, desiredCount=0)
    envoy.wait_for_hosts(SERVICE, three, timeout=60)
    wait_for(lambda: health(plane) == health_pb2.HealthCheckResponse.SERVING, "SERVING")
    recovered = status(plane)
    assert not recovered.degraded and recovered.ready and recovered.pipeline_failures_total >= 2
    assert "DEGRADED" not in status_cli(plane, ready=True)
