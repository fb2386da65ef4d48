"""One sync of one ECS cluster through boto3: list, describe, resolve addresses. Blocking I/O."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterable, Iterator, Mapping

import structlog

from controlplane.discovery.addresses import container_endpoints
from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.discovery.taskdefs import TaskDefinitionCache

log = structlog.get_logger()

DESCRIBE_TASKS_BATCH = 100
DESCRIBE_CONTAINER_INSTANCES_BATCH = 100


def batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CountingClient:
    """Wraps a boto3 client and counts the API calls made through it, by operation."""

    def __init__(self, client: Any, counter: Counter[str]) -> None:
        self._client = client
        self._counter = counter

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self._counter[operation] += 1
        return getattr(self._client, _snake(operation))(**kwargs)  # type: ignore[no-any-return]


def _snake(operation: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in operation).lstrip("_")


class ClusterReader:
    """Reads one full view of a cluster. Raises on any API error: the caller keeps the last good view."""

    def __init__(self, ecs: Any, ec2: Any, task_definitions: TaskDefinitionCache | None = None) -> None:
        self._ecs = ecs
        self._ec2 = ec2
        self._calls: Counter[str] = Counter()
        counting = CountingClient(ecs, self._calls)
        self._describe_task_definition = lambda arn: counting.call("DescribeTaskDefinition", taskDefinition=arn)[
            "taskDefinition"
        ]
        # Shared across clusters: a revision is immutable, whoever described it first.
        self.task_definitions = task_definitions or TaskDefinitionCache()
        # Tasks seen STOPPED never run again; ListTasks(STOPPED) keeps naming them for an hour.
        self._stopped: set[str] = set()
        # Container instance ARN -> EC2 instance id -> private address. Instances keep their
        # address for life, so both maps only grow; unknown ARNs are described when first seen.
        self._instance_ids: dict[str, str] = {}
        self._instance_addresses: dict[str, str] = {}

    def read(self, cluster: str) -> tuple[ClusterState, Mapping[str, int]]:
        """The cluster's current tasks (running and draining) and the API calls the read cost."""
        self._calls.clear()
        ecs = CountingClient(self._ecs, self._calls)
        arns = self._list_tasks(ecs, cluster, "RUNNING") + self._list_tasks(ecs, cluster, "STOPPED")
        listed = set(arns)
        self._stopped &= listed  # forget tasks ECS no longer lists
        raw_tasks: list[dict[str, Any]] = []
        for batch in batches(sorted(listed - self._stopped), DESCRIBE_TASKS_BATCH):
            response = ecs.call("DescribeTasks", cluster=cluster, tasks=batch)
            raw_tasks.extend(response.get("tasks", ()))
        # A STOPPED task takes no traffic and needs no address: skip its task definition too.
        self._stopped |= {str(task["taskArn"]) for task in raw_tasks if task.get("lastStatus") == "STOPPED"}
        live = [task for task in raw_tasks if task.get("lastStatus") != "STOPPED"]
        task_definitions: dict[str, TaskDefinition] = {}
        for raw in live:
            task_definition = self.task_definitions.get(raw["taskDefinitionArn"], self._describe_task_definition)
            task_definitions[task_definition.arn] = task_definition
        # awsvpc tasks (EC2 ones included) are reached on their own ENI: only bridge/host tasks
        # need their container instance's address.
        self._resolve_instances(
            ecs, cluster, [raw for raw in live if self.task_definitions.get(raw["taskDefinitionArn"], self._describe_task_definition).network_mode != "awsvpc"]
        )
        tasks: list[Task] = []
        for raw in live:
            task_definition = self.task_definitions.get(raw["taskDefinitionArn"], self._describe_task_definition)
            tasks.append(self._task(raw, cluster, task_definition))
        tasks.sort(key=lambda task: task.arn)
        state = ClusterState(cluster=cluster, tasks=tuple(tasks), task_definitions=task_definitions, synced_at=time.time())
        return state, dict(self._calls)

    @staticmethod
    def _list_tasks(ecs: CountingClient, cluster: str, desired_status: str) -> list[str]:
        arns: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"cluster": cluster, "desiredStatus": desired_status, "maxResults": 100}
            if token:
                kwargs["nextToken"] = token
            response = ecs.call("ListTasks", **kwargs)
            arns.extend(response.get("taskArns", ()))
            token = response.get("nextToken")
            if not token:
                return arns

    def _resolve_instances(self, ecs: CountingClient, cluster: str, tasks: Iterable[Mapping[str, Any]]) -> None:
        unknown = sorted(
            {
                str(task["containerInstanceArn"])
                for task in tasks
                if task.get("containerInstanceArn") and task["containerInstanceArn"] not in self._instance_ids
            }
        )
        for batch in batches(unknown, DESCRIBE_CONTAINER_INSTANCES_BATCH):
            response = ecs.call("DescribeContainerInstances", cluster=cluster, containerInstances=batch)
            for instance in response.get("containerInstances", ()):
                if instance.get("ec2InstanceId"):
                    self._instance_ids[instance["containerInstanceArn"]] = instance["ec2InstanceId"]
        missing = sorted({iid for iid in self._instance_ids.values() if iid not in self._instance_addresses})
        if missing:
            self._calls["ec2:DescribeInstances"] += 1
            paginator = self._ec2.get_paginator("describe_instances")
            for page in paginator.paginate(InstanceIds=missing):
                for reservation in page.get("Reservations", ()):
                    for instance in reservation.get("Instances", ()):
                        if instance.get("PrivateIpAddress"):
                            self._instance_addresses[instance["InstanceId"]] = instance["PrivateIpAddress"]

    def _task(self, raw: Mapping[str, Any], cluster: str, task_definition: TaskDefinition) -> Task:
        instance_address = None
        if raw.get("containerInstanceArn"):
            instance_id = self._instance_ids.get(raw["containerInstanceArn"])
            instance_address = self._instance_addresses.get(instance_id) if instance_id else None
        started = raw.get("startedAt")
        return Task(
            arn=str(raw["taskArn"]),
            cluster=cluster,
            task_definition_arn=task_definition.arn,
            group=str(raw.get("group", "")),
            last_status=str(raw.get("lastStatus", "")),
            desired_status=str(raw.get("desiredStatus", "")),
            health_status=str(raw.get("healthStatus", "UNKNOWN")),
            availability_zone=str(raw.get("availabilityZone", "")),
            container_health={
                str(c.get("name")): str(c.get("healthStatus", "UNKNOWN")) for c in raw.get("containers", ())
            },
            endpoints=container_endpoints(raw, task_definition, instance_address),
            started_at=started.timestamp() if hasattr(started, "timestamp") else None,
        )
