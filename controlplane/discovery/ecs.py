"""Reading one ECS cluster through boto3: full reads and reads of named tasks. Blocking I/O.

A `ClusterReader` keeps the cluster's task table between reads (tasks by ARN with the
`version` ECS last reported for each, and tombstones of tasks seen STOPPED), so that an event
or an out-of-date describe never moves a task backwards and a stopped task never comes back.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Iterator, Mapping, Sequence

import structlog

from controlplane.discovery.addresses import container_endpoints, eni_address
from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.discovery.taskdefs import TaskDefinitionCache

log = structlog.get_logger()

DESCRIBE_TASKS_BATCH = 100
DESCRIBE_CONTAINER_INSTANCES_BATCH = 100
SSM_INSTANCE_IDS_BATCH = 50
# How long a tombstone outlives ECS listing the task (ECS lists STOPPED tasks for about an hour).
TOMBSTONE_SECONDS = 3600.0
DRAINING_LAST_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})


class DescribeFailure(RuntimeError):
    """DescribeTasks answered with failures other than MISSING: the read must not drop those tasks."""


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class CountingClient:
    """Wraps a boto3 client and counts the API calls made through it, by operation."""

    def __init__(self, client: Any, counter: Counter[str], prefix: str = "") -> None:
        self._client = client
        self._counter = counter
        self._prefix = prefix

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self._counter[self._prefix + operation] += 1
        return getattr(self._client, _snake(operation))(**kwargs)  # type: ignore[no-any-return]


def _snake(operation: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in operation).lstrip("_")


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks discovery considers: by ECS service name and by task definition family (regexes,
    matched in full). A task must pass both; an unset pattern lets everything through."""

    services: str | None = None
    families: str | None = None

    def accepts(self, raw: Mapping[str, Any]) -> bool:
        if self.services:
            group = str(raw.get("group", ""))
            service = group.split(":", 1)[1] if group.startswith("service:") else ""
            if not re.fullmatch(self.services, service):
                return False
        if self.families:
            family = str(raw.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].rsplit(":", 1)[0]
            if not re.fullmatch(self.families, family):
                return False
        return True


def task_version(raw: Mapping[str, Any]) -> int | None:
    version = raw.get("version")
    return int(version) if isinstance(version, int) or (isinstance(version, str) and version.isdigit()) else None


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


class ClusterReader:
    """Reads one cluster. Raises on any API error: the caller keeps the last good view."""

    def __init__(
        self,
        ecs: Any,
        ec2: Any,
        task_definitions: TaskDefinitionCache | None = None,
        *,
        ssm: Any | None = None,
        task_filter: TaskFilter | None = None,
    ) -> None:
        self._ecs = ecs
        self._ec2 = ec2
        self._ssm = ssm
        self._filter = task_filter or TaskFilter()
        self._calls: Counter[str] = Counter()
        # Shared across clusters: a revision is immutable, whoever described it first.
        self.task_definitions = task_definitions or TaskDefinitionCache()
        # The task table: live tasks by ARN, the version each was last read at, tombstones.
        self._live: dict[str, Task] = {}
        self._versions: dict[str, int] = {}
        # Tasks seen STOPPED never run again; ListTasks(STOPPED) keeps naming them for an hour.
        self._stopped: dict[str, float] = {}
        # Container instance ARN -> instance id (EC2 i-..., or SSM mi-... for ECS Anywhere) -> address.
        # Addresses of known instances are kept; an unknown ARN, or a known one whose address is
        # missing, is described when a task names it.
        self._instance_ids: dict[str, str] = {}
        self._instance_addresses: dict[str, str] = {}

    # -- reads ------------------------------------------------------------------------------

    def read(self, cluster: str) -> tuple[ClusterState, Mapping[str, int]]:
        """Full read: the cluster's current tasks (running and draining) and the calls it cost."""
        self._calls.clear()
        ecs = CountingClient(self._ecs, self._calls)
        running = self._list_tasks(ecs, cluster, "RUNNING")
        stopping = self._list_tasks(ecs, cluster, "STOPPED")
        listed = set(running) | set(stopping)
        now = time.time()
        # Forget tombstones ECS no longer lists, once they are old enough that no late event can
        # still name them.
        self._stopped = {arn: at for arn, at in self._stopped.items() if arn in listed or now - at < TOMBSTONE_SECONDS}
        to_describe = sorted(listed - set(self._stopped))
        raw_tasks = self._describe(ecs, cluster, to_describe)
        fresh: dict[str, Task] = {}
        versions: dict[str, int] = {}
        self._apply_raw(ecs, cluster, raw_tasks, into=fresh, versions=versions)
        # A describe can be older than an event applied just before it (ECS is eventually
        # consistent): keep whichever version is newer.
        for arn, task in self._live.items():
            old = self._versions.get(arn)
            if arn in fresh and old is not None and versions.get(arn) is not None and old > versions[arn]:
                fresh[arn] = task
                versions[arn] = old
        self._live = fresh
        kept = {arn: v for arn, v in self._versions.items() if arn in self._stopped}
        kept.update(versions)
        self._versions = {arn: v for arn, v in kept.items() if arn in fresh or arn in self._stopped}
        return self.state(cluster), dict(self._calls)

    def apply(
        self, cluster: str, changes: Iterable[Mapping[str, Any]], *, trust_details: bool = True
    ) -> tuple[ClusterState, Mapping[str, int], int]:
        """Merge task-change event details into the table; the state, the calls and how many
        changes were new (not duplicates or older than what is known).

        With `trust_details` a detail that carries everything we need is used as is (no call);
        otherwise, or when it lacks something, the named tasks are described (100 per call).
        """
        self._calls.clear()
        ecs = CountingClient(self._ecs, self._calls)
        newest: dict[str, Mapping[str, Any]] = {}
        for detail in changes:
            arn = str(detail.get("taskArn", ""))
            if not arn:
                continue
            previous = newest.get(arn)
            if previous is None or (task_version(detail) or 0) >= (task_version(previous) or 0):
                newest[arn] = detail
        usable: list[Mapping[str, Any]] = []
        to_describe: list[str] = []
        for arn, detail in newest.items():
            if self._is_stale(arn, task_version(detail)):
                continue
            if trust_details and self._complete(ecs, detail):
                usable.append(detail)
            else:
                to_describe.append(arn)
        usable.extend(self._describe(ecs, cluster, sorted(to_describe)))
        applied = self._apply_raw(ecs, cluster, usable, into=self._live, versions=self._versions)
        return self.state(cluster), dict(self._calls), applied

    def state(self, cluster: str) -> ClusterState:
        tasks = tuple(sorted(self._live.values(), key=lambda task: task.arn))
        task_definitions = {
            task.task_definition_arn: self.task_definitions.get(task.task_definition_arn) for task in tasks
        }
        return ClusterState(cluster=cluster, tasks=tasks, task_definitions=task_definitions, synced_at=time.time())

    # -- the table --------------------------------------------------------------------------

    def _is_stale(self, arn: str, version: int | None) -> bool:
        """True when a report about `arn` at `version` is not newer than what we hold."""
        known = self._versions.get(arn)
        if arn in self._stopped:
            # STOPPED is final: only a report of a newer version could matter, and none exists.
            return version is None or known is None or version <= known
        return version is not None and known is not None and version <= known

    def _apply_raw(
        self,
        ecs: CountingClient,
        cluster: str,
        raw_tasks: Sequence[Mapping[str, Any]],
        *,
        into: dict[str, Task],
        versions: dict[str, int],
    ) -> int:
        applied = 0
        live: list[Mapping[str, Any]] = []
        for raw in raw_tasks:
            arn = str(raw["taskArn"])
            version = task_version(raw)
            if into is self._live and self._is_stale(arn, version):
                continue
            applied += 1
            if version is not None:
                versions[arn] = version
            if raw.get("lastStatus") == "STOPPED":
                # A STOPPED task takes no traffic and needs no address: skip its task definition too.
                self._stopped[arn] = time.time()
                into.pop(arn, None)
            elif not self._filter.accepts(raw):
                into.pop(arn, None)
            else:
                live.append(raw)
        for raw in live:
            self.task_definitions.get(raw["taskDefinitionArn"], self._describe_task_definition(ecs))
        # awsvpc tasks (EC2 ones included) are reached on their own ENI: only bridge/host tasks
        # need their container instance's address.
        self._resolve_instances(
            ecs,
            cluster,
            [raw for raw in live if self.task_definitions.get(raw["taskDefinitionArn"]).network_mode != "awsvpc"],
        )
        for raw in live:
            task = self._task(raw, cluster, self.task_definitions.get(raw["taskDefinitionArn"]))
            into[task.arn] = task
        return applied

    def _complete(self, ecs: CountingClient, detail: Mapping[str, Any]) -> bool:
        """True when an event detail says all a describe would (for what we read)."""
        if task_version(detail) is None or not detail.get("taskDefinitionArn") or "lastStatus" not in detail:
            return False
        if detail.get("lastStatus") != "RUNNING":
            return True
        # A RUNNING task must show where it listens, or we describe it.
        if "containers" not in detail:
            return False
        task_definition = self.task_definitions.get(detail["taskDefinitionArn"], self._describe_task_definition(ecs))
        has_ports = any(c.port_mappings for c in task_definition.containers)
        if not has_ports:
            return True
        if task_definition.network_mode == "awsvpc":
            return eni_address(detail) is not None
        return bool(detail.get("containerInstanceArn"))

    # -- calls --------------------------------------------------------------------------------

    def _describe_task_definition(self, ecs: CountingClient) -> Any:
        return lambda arn: ecs.call("DescribeTaskDefinition", taskDefinition=arn)["taskDefinition"]

    @staticmethod
    def _describe(ecs: CountingClient, cluster: str, arns: Sequence[str]) -> list[dict[str, Any]]:
        """Every named task. Any failed page fails the whole read: a task is never dropped
        because the call that would have shown it failed."""
        raw_tasks: list[dict[str, Any]] = []
        for batch in batches(arns, DESCRIBE_TASKS_BATCH):
            response = ecs.call("DescribeTasks", cluster=cluster, tasks=batch)
            failures = [f for f in response.get("failures", ()) if f.get("reason") != "MISSING"]
            if failures:
                raise DescribeFailure(
                    f"DescribeTasks in {cluster} failed for {len(failures)} task(s): "
                    + ", ".join(f"{f.get('arn')}: {f.get('reason')}" for f in failures[:3])
                )
            raw_tasks.extend(response.get("tasks", ()))
        return raw_tasks

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
        wanted = {str(task["containerInstanceArn"]) for task in tasks if task.get("containerInstanceArn")}
        unknown = sorted(
            arn
            for arn in wanted
            if arn not in self._instance_ids or self._instance_ids[arn] not in self._instance_addresses
        )
        for batch in batches(unknown, DESCRIBE_CONTAINER_INSTANCES_BATCH):
            response = ecs.call("DescribeContainerInstances", cluster=cluster, containerInstances=batch)
            for instance in response.get("containerInstances", ()):
                if instance.get("ec2InstanceId"):
                    self._instance_ids[instance["containerInstanceArn"]] = instance["ec2InstanceId"]
        missing = sorted({self._instance_ids[a] for a in unknown if a in self._instance_ids} - set(self._instance_addresses))
        # ECS Anywhere: an external instance's "ec2InstanceId" is its SSM managed instance id
        # (mi-...); its address is the IPAddress SSM reports for it.
        managed = [iid for iid in missing if iid.startswith("mi-")]
        ec2_ids = [iid for iid in missing if not iid.startswith("mi-")]
        if ec2_ids:
            self._calls["ec2:DescribeInstances"] += 1
            paginator = self._ec2.get_paginator("describe_instances")
            for page in paginator.paginate(InstanceIds=ec2_ids):
                for reservation in page.get("Reservations", ()):
                    for instance in reservation.get("Instances", ()):
                        if instance.get("PrivateIpAddress"):
                            self._instance_addresses[instance["InstanceId"]] = instance["PrivateIpAddress"]
        if managed and self._ssm is not None:
            ssm = CountingClient(self._ssm, self._calls, prefix="ssm:")
            for batch in batches(managed, SSM_INSTANCE_IDS_BATCH):
                token: str | None = None
                while True:
                    kwargs: dict[str, Any] = {"Filters": [{"Key": "InstanceIds", "Values": batch}]}
                    if token:
                        kwargs["NextToken"] = token
                    response = ssm.call("DescribeInstanceInformation", **kwargs)
                    for info in response.get("InstanceInformationList", ()):
                        if info.get("IPAddress"):
                            self._instance_addresses[info["InstanceId"]] = info["IPAddress"]
                    token = response.get("NextToken")
                    if not token:
                        break
        elif managed:
            log.warning("discovery.external_instances_need_ssm", cluster=cluster, instances=managed[:5])

    def _task(self, raw: Mapping[str, Any], cluster: str, task_definition: TaskDefinition) -> Task:
        instance_address = None
        if raw.get("containerInstanceArn"):
            instance_id = self._instance_ids.get(raw["containerInstanceArn"])
            instance_address = self._instance_addresses.get(instance_id) if instance_id else None
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
            started_at=_timestamp(raw.get("startedAt")),
        )
