"""One local ECS + control plane + edge Envoy for the module; every process stopped afterwards."""

from __future__ import annotations

from typing import Iterator

import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack

SERVICE = "routeguide"


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="it", poll_interval=0.5, deactivating_seconds=2.0) as stack:
        stack.start_local_ecs()
        # A service without a load balancer: ECS sends SIGTERM at once (deactivating_seconds does not
        # apply). The app keeps serving 1 s, as docs/discovery.md advises: one that stops at once
        # cancels a call arriving as it stops, before discovery drains it (CI saw one CANCELLED).
        stack.create_service(SERVICE, stack.register(environment={"ROUTEGUIDE_SHUTDOWN_DELAY_S": "1"}), 2)
        stack.wait_for_running(SERVICE, 2)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-it")
    envoy.wait_for_hosts(SERVICE, stack.addresses(stack.running_tasks(SERVICE)), timeout=20)
    return envoy


@pytest.fixture
def two_tasks(stack: DemoStack, envoy: EnvoyProcess) -> set[str]:
    """The route-guide service back at exactly 2 running tasks, all of them known to Envoy."""
    stack.ecs.update_service(cluster=stack.cluster, service=SERVICE, desiredCount=2)
    addresses = stack.addresses(stack.wait_for_running(SERVICE, 2))
    envoy.wait_for_hosts(SERVICE, addresses, timeout=20)
    return addresses
