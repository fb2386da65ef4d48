"""The pure service planning step."""

from __future__ import annotations

from controlplane.localecs import model
from controlplane.localecs.model import Container, Deployment, Service, Task, TaskDefinition
from controlplane.localecs.scheduler import AWS_HEALTHY_AFTER_RUNNING_SECONDS, plan_service

# Tasks here started at t = n seconds; "now" is long after, unless a test says otherwise.
NOW = 1000.0


def _definition(revision: int) -> TaskDefinition:
    return TaskDefinition(arn=f"td:{revision}", family="f", revision=revision, body={"containerDefinitions": []})


def _task(deployment: Deployment, status: str, n: int, *, health_check: bool = False, health: str = model.UNKNOWN) -> Task:
    container = Container(
        name="app", arn=f"c/{n}", image="x", essential=True, command=[], environment={},
        health_check={"command": ["CMD", "true"]} if health_check else None, stop_timeout=30.0, health_status=health,
    )
    return Task(
        id=f"{n:032x}", arn=f"task/{n}", cluster="c", task_definition=deployment.task_definition, group="service:s",
        launch_type="EC2", network_mode="awsvpc", host_address="127.10.0.2", containers=[container], availability_zone="us-east-1a",
        deployment_id=deployment.id, service_name="s", last_status=status, created_at=float(n),
        started_at=float(n) if status == model.RUNNING else None,
    )


def _service(desired: int, *deployments: Deployment) -> Service:
    service = Service(name="s", arn="s", cluster="c", task_definition=deployments[0].task_definition, desired_count=desired, launch_type="EC2")
    service.deployments = list(deployments)
    return service


def test_new_service_starts_desired_count() -> None:
    primary = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=3)
    plan = plan_service(_service(3, primary), [], NOW)
    assert plan.start == [(primary, 3)] and plan.stop == []


def test_deployment_keeps_old_tasks_until_new_ones_run() -> None:
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=2)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=2, status="ACTIVE")
    service = _service(2, new, old)
    old_tasks = [_task(old, model.RUNNING, 1), _task(old, model.RUNNING, 2)]
    plan = plan_service(service, old_tasks, NOW)
    assert plan.start == [(new, 2)] and plan.stop == []
    # Both new tasks pending: still nothing stops.
    pending = [_task(new, model.PENDING, 3), _task(new, model.PENDING, 4)]
    assert plan_service(service, old_tasks + pending, NOW).stop == []
    # One new task running: exactly one old task may stop.
    one_up = [_task(new, model.RUNNING, 3), _task(new, model.PENDING, 4)]
    plan = plan_service(service, old_tasks + one_up, NOW)
    assert [t.arn for t, _ in plan.stop] == ["task/1"] and plan.start == []


def test_scale_in_stops_pending_before_running() -> None:
    primary = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1)
    tasks = [_task(primary, model.RUNNING, 1), _task(primary, model.PENDING, 2)]
    plan = plan_service(_service(1, primary), tasks, NOW)
    assert [t.arn for t, _ in plan.stop] == ["task/2"]


def test_drained_old_deployment_is_finished() -> None:
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=1)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1, status="ACTIVE")
    plan = plan_service(_service(1, new, old), [_task(new, model.RUNNING, 1)], NOW)
    assert plan.finished == [old]


def _rolling() -> tuple[Service, Deployment, list[Task]]:
    new = Deployment(id="ecs-svc/2", task_definition=_definition(2), desired_count=1)
    old = Deployment(id="ecs-svc/1", task_definition=_definition(1), desired_count=1, status="ACTIVE")
    return _service(1, new, old), new, [_task(old, model.RUNNING, 1)]


def test_new_task_without_health_check_counts_after_forty_seconds_running() -> None:
    service, new, old_tasks = _rolling()
    started = 500.0
    fresh = _task(new, model.RUNNING, 2)
    fresh.started_at = started
    assert AWS_HEALTHY_AFTER_RUNNING_SECONDS == 40.0
    assert plan_service(service, old_tasks + [fresh], started + 39.9).stop == []
    assert [t.arn for t, _ in plan_service(service, old_tasks + [fresh], started + 40.0).stop] == ["task/1"]
    # The grace is a knob (tests shorten it).
    assert [t.arn for t, _ in plan_service(service, old_tasks + [fresh], started + 1.0, healthy_after_running_seconds=1.0).stop] == ["task/1"]


def test_new_task_with_health_check_counts_once_healthy() -> None:
    service, new, old_tasks = _rolling()
    for health, stops in [(model.UNKNOWN, []), (model.HEALTHY, ["task/1"])]:
        fresh = _task(new, model.RUNNING, 2, health_check=True, health=health)
        assert [t.arn for t, _ in plan_service(service, old_tasks + [fresh], NOW).stop] == stops


def test_running_old_task_in_its_grace_is_not_stopped_early() -> None:
    service, new, _ = _rolling()
    old = service.deployments[1]
    young_old = _task(old, model.RUNNING, 1)
    young_old.started_at = NOW - 5
    fresh = _task(new, model.RUNNING, 2)
    fresh.started_at = NOW - 5
    assert plan_service(service, [young_old, fresh], NOW).stop == []
