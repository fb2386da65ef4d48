"""Zone placement: instances take the configured zones in turn; a group's tasks (a service's, or
RunTask's family/group) spread over zones as ECS's default spread(attribute:ecs.availability-zone)
does, deterministically, so tests know which zone each task lands in."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from controlplane.localecs.backend import LocalEcs

ZONES = ["us-east-1a", "us-east-1b"]


def _definition(ecs: LocalEcs, family: str, *, network_mode: str = "awsvpc", compatibility: str = "FARGATE") -> None:
    mapping: dict[str, Any] = {"containerPort": 8080, **({"hostPort": 0} if network_mode == "bridge" else {})}
    ecs.task_definitions.register(
        {
            "family": family,
            "networkMode": network_mode,
            "requiresCompatibilities": [compatibility],
            "containerDefinitions": [{"name": "app", "image": "x", "portMappings": [mapping]}],
        }
    )


def test_instances_take_the_zones_in_turn_and_fargate_tasks_spread_by_group() -> None:
    with LocalEcs(processes=False, zones=ZONES, instances_per_cluster=4) as ecs:
        cluster = ecs.clusters.create("c")
        assert [i.availability_zone for i in cluster.instances] == ZONES * 2
        _definition(ecs, "api")
        _definition(ecs, "worker")
        api = ecs.tasks.run(cluster, ecs.task_definitions.get("api"), count=3)
        worker = ecs.tasks.run(cluster, ecs.task_definitions.get("worker"), count=1)  # another group: starts over in the first zone
        assert [t.availability_zone for t in api] == ["us-east-1a", "us-east-1b", "us-east-1a"]
        assert [t.availability_zone for t in worker] == ["us-east-1a"]
        # A stopped task no longer counts: the next one of its group fills its zone again.
        ecs.tasks.stop(api[1], "UserInitiated", "test")
        assert [t.availability_zone for t in ecs.tasks.run(cluster, ecs.task_definitions.get("api"), count=2)] == ["us-east-1b", "us-east-1b"]


def test_ec2_tasks_spread_over_zones_then_over_the_instances_of_a_zone() -> None:
    with LocalEcs(processes=False, zones=ZONES, instances_per_cluster=4) as ecs:
        cluster = ecs.clusters.create("c")
        _definition(ecs, "br", network_mode="bridge", compatibility="EC2")
        tasks = ecs.tasks.run(cluster, ecs.task_definitions.get("br"), count=8)
        assert Counter(t.availability_zone for t in tasks) == {"us-east-1a": 4, "us-east-1b": 4}
        per_instance = Counter(t.container_instance.id for t in tasks if t.container_instance is not None)
        assert sorted(per_instance.values()) == [2, 2, 2, 2] and set(per_instance) == {i.id for i in cluster.instances}
        assert all(t.container_instance and t.container_instance.availability_zone == t.availability_zone for t in tasks)


def test_a_services_tasks_spread_over_every_zone_by_default() -> None:
    with LocalEcs(processes=False) as ecs:
        cluster = ecs.clusters.create("c")
        _definition(ecs, "svc")
        ecs.services.create(cluster, "svc", ecs.task_definitions.get("svc"), desired_count=6, launch_type="FARGATE")
        deadline = time.monotonic() + 10
        while len(tasks := [t for t in ecs.tasks.of_cluster(cluster) if t.service_name == "svc"]) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Counter(t.availability_zone for t in tasks) == {"us-east-1a": 2, "us-east-1b": 2, "us-east-1c": 2}
