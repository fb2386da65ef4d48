"""The service scheduler: desiredCount, scaling, rolling deployments, replacing crashed tasks."""

from __future__ import annotations

import time
from typing import Any

from .conftest import HEALTHY_AFTER_RUNNING_SECONDS
from .helpers import container, wait_for


def _tasks(ecs: Any, cluster: str, desired: str = "RUNNING", **filters: Any) -> list[dict[str, Any]]:
    arns = ecs.list_tasks(cluster=cluster, desiredStatus=desired, **filters)["taskArns"]
    return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []


def _running(ecs: Any, cluster: str, service: str) -> list[dict[str, Any]]:
    return [t for t in _tasks(ecs, cluster, serviceName=service) if t["lastStatus"] == "RUNNING"]


def test_service_starts_desired_count_and_scales_out_and_in(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="svc", networkMode="awsvpc", containerDefinitions=[container()])
    service = ecs.create_service(cluster=cluster, serviceName="svc", taskDefinition="svc", desiredCount=2)["service"]
    deployment_id = service["deployments"][0]["id"]
    assert deployment_id.startswith("ecs-svc/")
    tasks = wait_for(lambda: len(r := _running(ecs, cluster, "svc")) == 2 and r, what="2 running")
    assert all(t["group"] == "service:svc" and t["startedBy"] == deployment_id for t in tasks)
    described = wait_for(
        lambda: (s := ecs.describe_services(cluster=cluster, services=["svc"])["services"][0])["deployments"][0]["rolloutState"] == "COMPLETED" and s,
        what="rollout COMPLETED",
    )
    assert described["runningCount"] == 2 and described["pendingCount"] == 0

    ecs.update_service(cluster=cluster, service="svc", desiredCount=3)
    wait_for(lambda: len(_running(ecs, cluster, "svc")) == 3, what="3 running")

    ecs.update_service(cluster=cluster, service="svc", desiredCount=1)
    wait_for(lambda: len(_tasks(ecs, cluster, serviceName="svc")) == 1, what="scaled in to 1")
    draining = _tasks(ecs, cluster, desired="STOPPED", serviceName="svc")
    assert len(draining) == 2
    assert all(t["stopCode"] == "ServiceSchedulerInitiated" for t in draining)
    wait_for(lambda: all(t["lastStatus"] == "STOPPED" for t in _tasks(ecs, cluster, desired="STOPPED", serviceName="svc")), what="stopped")
    assert ecs.describe_services(cluster=cluster, services=["svc"])["services"][0]["runningCount"] == 1


def test_rolling_deployment_starts_new_tasks_before_stopping_old(ecs: Any, cluster: str) -> None:
    old = ecs.register_task_definition(family="roll", networkMode="awsvpc", containerDefinitions=[container()])["taskDefinition"]
    new = ecs.register_task_definition(family="roll", networkMode="awsvpc", containerDefinitions=[container(env={"V": "2"})])["taskDefinition"]
    ecs.create_service(cluster=cluster, serviceName="roll", taskDefinition=old["taskDefinitionArn"], desiredCount=2)
    wait_for(lambda: len(_running(ecs, cluster, "roll")) == 2, what="2 old running")

    service = ecs.update_service(cluster=cluster, service="roll", taskDefinition=new["taskDefinitionArn"])["service"]
    assert [d["status"] for d in service["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert service["deployments"][0]["taskDefinition"] == new["taskDefinitionArn"]
    assert service["deployments"][0]["rolloutState"] == "IN_PROGRESS"

    first_old_stop: list[list[dict[str, Any]]] = []

    def watch() -> bool:
        # One DescribeTasks for both lists: a consistent view (two calls could straddle a change).
        arns = [a for d in ("RUNNING", "STOPPED") for a in ecs.list_tasks(cluster=cluster, desiredStatus=d, serviceName="roll")["taskArns"]]
        every = ecs.describe_tasks(cluster=cluster, tasks=list(dict.fromkeys(arns)))["tasks"]
        old_stopping = [t for t in every if t["taskDefinitionArn"] == old["taskDefinitionArn"] and t["desiredStatus"] == "STOPPED"]
        if old_stopping and not first_old_stop:
            first_old_stop.append(every)
        new_running = [t for t in every if t["taskDefinitionArn"] == new["taskDefinitionArn"] and t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"]
        return len(old_stopping) == 2 and len(new_running) == 2

    wait_for(watch, what="deployment done", interval=0.005)
    snapshot = first_old_stop[0]
    new_running_then = [t for t in snapshot if t["taskDefinitionArn"] == new["taskDefinitionArn"] and t["lastStatus"] == "RUNNING"]
    assert new_running_then, "old tasks began stopping before any new task was RUNNING"
    # minimumHealthyPercent 100: RUNNING tasks never dropped below desiredCount.
    running_then = [t for t in snapshot if t["lastStatus"] == "RUNNING" and t["desiredStatus"] == "RUNNING"]
    assert len(running_then) >= 2
    final = wait_for(
        lambda: len((s := ecs.describe_services(cluster=cluster, services=["roll"])["services"][0])["deployments"]) == 1
        and s["deployments"][0]["rolloutState"] == "COMPLETED" and s,
        what="single COMPLETED deployment",
    )
    assert final["taskDefinition"] == new["taskDefinitionArn"]
    # ECS counts a new task without health checks as healthy only after it ran a while
    # (40 s in AWS, HEALTHY_AFTER_RUNNING_SECONDS here): no old task stopped before that.
    every = _tasks(ecs, cluster, serviceName="roll") + _tasks(ecs, cluster, desired="STOPPED", serviceName="roll")
    first_new_start = min(t["startedAt"] for t in every if t["taskDefinitionArn"] == new["taskDefinitionArn"])
    first_old_stop_at = min(t["stoppingAt"] for t in every if t["taskDefinitionArn"] == old["taskDefinitionArn"])
    assert (first_old_stop_at - first_new_start).total_seconds() >= HEALTHY_AFTER_RUNNING_SECONDS - 0.01


def test_rolling_deployment_waits_for_new_tasks_to_be_healthy(ecs_unvalidated: Any, cluster: str, tmp_path: Any) -> None:
    ecs = ecs_unvalidated
    ready = tmp_path / "ready"
    # Failures in the start period do not count: UNKNOWN (not UNHEALTHY) until "ready" exists.
    check = {"command": ["CMD-SHELL", f"test -e {ready}"], "interval": 0.1, "retries": 1, "timeout": 2, "startPeriod": 60}
    old = ecs.register_task_definition(family="hc", networkMode="awsvpc", containerDefinitions=[container()])["taskDefinition"]
    new = ecs.register_task_definition(family="hc", networkMode="awsvpc", containerDefinitions=[container(healthCheck=check)])["taskDefinition"]
    ecs.create_service(cluster=cluster, serviceName="hc", taskDefinition=old["taskDefinitionArn"], desiredCount=1)
    wait_for(lambda: len(_running(ecs, cluster, "hc")) == 1, what="old running")
    ecs.update_service(cluster=cluster, service="hc", taskDefinition=new["taskDefinitionArn"])

    def new_task() -> dict[str, Any] | None:
        found = [t for t in _tasks(ecs, cluster, serviceName="hc") if t["taskDefinitionArn"] == new["taskDefinitionArn"]]
        return found[0] if found and found[0]["lastStatus"] == "RUNNING" else None

    wait_for(new_task, what="new task RUNNING")
    # RUNNING but not yet HEALTHY: the old task keeps running, well past the grace.
    time.sleep(HEALTHY_AFTER_RUNNING_SECONDS * 3)
    assert _tasks(ecs, cluster, desired="STOPPED", serviceName="hc") == []
    ready.touch()
    stopped = wait_for(lambda: _tasks(ecs, cluster, desired="STOPPED", serviceName="hc"), what="old task stopping")
    assert [t["taskDefinitionArn"] for t in stopped] == [old["taskDefinitionArn"]]
    assert stopped[0]["stoppingAt"].timestamp() >= ready.stat().st_mtime - 0.01


def test_crashing_task_is_stopped_with_reason_and_replaced(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="crash", networkMode="awsvpc", containerDefinitions=[container(env={"EXIT_AFTER": "0.3", "EXIT_CODE": "3"})])
    ecs.create_service(cluster=cluster, serviceName="crash", taskDefinition="crash", desiredCount=1)
    crashed = wait_for(
        lambda: [t for t in _tasks(ecs, cluster, desired="STOPPED", serviceName="crash") if t["lastStatus"] == "STOPPED"],
        what="a crashed task",
    )[0]
    assert crashed["stopCode"] == "EssentialContainerExited"
    assert "Essential container in task exited" in crashed["stoppedReason"]
    assert crashed["containers"][0]["exitCode"] == 3
    replacement = wait_for(
        lambda: [t for t in _tasks(ecs, cluster, serviceName="crash") if t["taskArn"] != crashed["taskArn"]],
        what="a replacement task",
    )
    assert replacement[0]["group"] == "service:crash"
    assert ecs.describe_services(cluster=cluster, services=["crash"])["services"][0]["deployments"][0]["failedTasks"] >= 1
    ecs.update_service(cluster=cluster, service="crash", desiredCount=0)


def test_delete_service_stops_its_tasks(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="gone", containerDefinitions=[container()])
    ecs.create_service(cluster=cluster, serviceName="gone", taskDefinition="gone", desiredCount=2)
    wait_for(lambda: len(_running(ecs, cluster, "gone")) == 2, what="2 running")
    assert ecs.delete_service(cluster=cluster, service="gone", force=True)["service"]["status"] == "DRAINING"
    assert _tasks(ecs, cluster, serviceName="gone") == []
    wait_for(
        lambda: ecs.describe_services(cluster=cluster, services=["gone"])["services"][0]["status"] == "INACTIVE",
        what="INACTIVE",
    )
    assert all(t["lastStatus"] == "STOPPED" for t in _tasks(ecs, cluster, desired="STOPPED", serviceName="gone"))
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []
