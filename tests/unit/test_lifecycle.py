"""The health policy: which ECS task and container states take calls, drain, or are left out."""

from __future__ import annotations

import pytest

from controlplane.model.build import build_mesh
from controlplane.model.lifecycle import HealthPolicy, endpoint_health
from controlplane.model.mesh import EndpointHealth

from .builders import cluster_state, task, task_definition

H, U, D = EndpointHealth.HEALTHY, EndpointHealth.UNHEALTHY, EndpointHealth.DRAINING


@pytest.mark.parametrize(
    "last,desired,health,checked,expected",
    [
        # A container without a health check reports UNKNOWN for ever: served once RUNNING.
        ("RUNNING", "RUNNING", "UNKNOWN", False, H),
        # With a health check: only HEALTHY takes calls; UNKNOWN is "not checked yet".
        ("RUNNING", "RUNNING", "HEALTHY", True, H),
        ("RUNNING", "RUNNING", "UNKNOWN", True, U),
        ("RUNNING", "RUNNING", "UNHEALTHY", True, U),
        ("RUNNING", "STOPPED", "HEALTHY", True, D),
        ("RUNNING", "STOPPED", "UNHEALTHY", True, D),
        ("DEACTIVATING", "STOPPED", "HEALTHY", False, D),
        ("STOPPING", "STOPPED", "HEALTHY", False, D),
        # DEPROVISIONING: ECS has stopped the containers already; only the ENI is left.
        ("DEPROVISIONING", "STOPPED", "HEALTHY", False, None),
        ("PROVISIONING", "RUNNING", "UNKNOWN", False, None),
        ("PENDING", "RUNNING", "UNKNOWN", False, None),
        ("ACTIVATING", "RUNNING", "UNKNOWN", False, None),
        ("PENDING", "STOPPED", "UNKNOWN", False, None),
        ("STOPPED", "STOPPED", "UNKNOWN", False, None),
    ],
)
def test_task_lifecycle(last: str, desired: str, health: str, checked: bool, expected: EndpointHealth | None) -> None:
    td = task_definition("orders", 1, {"xds.service": "orders"}, health_check=checked)
    ecs_task = task(td, "t1", "127.0.0.1", last_status=last, desired_status=desired, container_health=health)

    assert endpoint_health(ecs_task, "app", td) is expected
    service = build_mesh([cluster_state([ecs_task], [td])]).service("orders")
    assert service is not None
    assert [(e.address, e.health) for e in service.endpoints] == ([] if expected is None else [("127.0.0.1", expected)])


def test_serving_unknown_is_a_choice() -> None:
    td = task_definition("orders", 1, {"xds.service": "orders"}, health_check=True)
    ecs_task = task(td, "t1", "127.0.0.1", container_health="UNKNOWN")

    assert endpoint_health(ecs_task, "app", td, HealthPolicy(serve_unknown=True)) is H
    assert endpoint_health(ecs_task, "app", td, HealthPolicy(serve_unknown=True)) is H
    mesh = build_mesh([cluster_state([ecs_task], [td])], health_policy=HealthPolicy(serve_unknown=True))
    assert [e.health for e in mesh.service("orders").endpoints] == [H]  # type: ignore[union-attr]
    # UNHEALTHY is never served, whatever the policy.
    unhealthy = task(td, "t2", "127.0.0.2", container_health="UNHEALTHY")
    assert endpoint_health(unhealthy, "app", td, HealthPolicy(serve_unknown=True)) is U


@pytest.mark.parametrize(
    "task_status,container_status,desired,expected",
    [
        ("RUNNING", "RUNNING", "RUNNING", H),
        # A non-essential container stopped inside a running task: its ports take no calls.
        ("RUNNING", "STOPPED", "RUNNING", None),
        ("RUNNING", "PENDING", "RUNNING", None),
        # Stopping task whose container already exited: nothing left to drain.
        ("STOPPING", "STOPPED", "STOPPED", None),
        ("STOPPING", "RUNNING", "STOPPED", D),
    ],
)
def test_a_containers_own_last_status_decides_for_its_ports(
    task_status: str, container_status: str, desired: str, expected: EndpointHealth | None
) -> None:
    td = task_definition("orders", 1, {"xds.service": "orders"})
    ecs_task = task(
        td, "t1", "127.0.0.1", last_status=task_status, desired_status=desired, container_status={"app": container_status}
    )

    assert endpoint_health(ecs_task, "app", td) is expected
