"""The pure service planning step."""

from __future__ import annotations

from controlplane.localecs import model
from controlplane.localecs.model import Deployment, Service, Task, TaskDefinition
from controlplane.localecs.scheduler import plan_service


def _definition(revision: int) -> TaskDefinition:
    return TaskDefinition(arn=f"td:{revision}", family="f", revision=revision, body={"containerDefinitions": []})


def _task(deployment: Deployment, status: str, n: int) -> Task:
    return Task(
        id=f"{n:032x}", arn=f"task/{n}", cluster="c", task_definition=deployment.task_definition, group="service:s",
        launch_type="EC2", network_mode="awsvpc", host_address="127.10.0.2", containers=[], availability_zone="us-east-1a",
        deployment_id=deployment.id, service_name="s", last_status=status, created_at=float(n),
    )


def _service(desired: int, *deployments: Deployment) -> Service:
    service = Service(name="s", arn="s", cluster="c", task_definition=deployments[0].task_definition, desired_count=desired, launch_type="EC2")
    service.deployments = list(deployments)
    return service


def test_new_service_starts_desired_count() -> None:
    primary = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=3)
    plan = plan_service(_service(3, primary), [])
    assert plan.start == [(primary, 3)] and plan.stop == []


def test_deployment_keeps_old_tasks_until_new_ones_run() -> None:
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=2)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=2, status="ACTIVE")
    service = _service(2, new, old)
    old_tasks = [_task(old, model.RUNNING, 1), _task(old, model.RUNNING, 2)]
    plan = plan_service(service, old_tasks)
    assert plan.start == [(new, 2)] and plan.stop == []
    # Both new tasks pending: still nothing stops.
    pending = [_task(new, model.PENDING, 3), _task(new, model.PENDING, 4)]
    assert plan_service(service, old_tasks + pending).stop == []
    # One new task running: exactly one old task may stop.
    one_up = [_task(new, model.RUNNING, 3), _task(new, model.PENDING, 4)]
    plan = plan_service(service, old_tasks + one_up)
    assert [t.arn for t, _ in plan.stop] == ["task/1"] and plan.start == []


def test_scale_in_stops_pending_before_running() -> None:
    primary = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1)
    tasks = [_task(primary, model.RUNNING, 1), _task(primary, model.PENDING, 2)]
    plan = plan_service(_service(1, primary), tasks)
    assert [t.arn for t, _ in plan.stop] == ["task/2"]


def test_drained_old_deployment_is_finished() -> None:
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=1)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1, status="ACTIVE")
    plan = plan_service(_service(1, new, old), [_task(new, model.RUNNING, 1)])
    assert plan.finished == [old]


def test_without_a_load_balancer_a_new_task_counts_40_s_after_running_or_once_healthy() -> None:
    """AWS: for a service without a load balancer, a task without a health check counts towards
    minimumHealthyPercent 40 s after RUNNING; one with a health check once HEALTHY."""
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=1)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1, status="ACTIVE")
    service = _service(1, new, old)
    old_task, new_task = _task(old, model.RUNNING, 1), _task(new, model.RUNNING, 2)
    new_task.started_at = 1000.0

    def stopped(now: float) -> list[str]:
        plan = plan_service(service, [old_task, new_task], now=now, healthy_after_running_seconds=40.0)
        return [t.arn for t, _ in plan.stop]

    assert stopped(1039.0) == []
    assert stopped(1040.0) == ["task/1"]

    checked = model.Container(
        name="app", arn="c", image="x", essential=True, command=[], environment={}, health_check={"command": ["true"]}, stop_timeout=30
    )
    new_task.containers = [checked]
    assert stopped(2000.0) == []  # UNKNOWN: not checked yet
    checked.health_status = model.HEALTHY
    assert stopped(1000.5) == ["task/1"]
