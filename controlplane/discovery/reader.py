"""Reading ECS clusters through boto3: full reads, reads of the tasks events name, and health
refreshes. Blocking I/O; the rules for merging what it reads live in `TaskTable`.

A full read costs ListTasks(desiredStatus=RUNNING) pages plus DescribeTasks (100 per call) of the
listed tasks and of the tasks we track that left that list (a task leaves it the moment its
desiredStatus becomes STOPPED: describing it shows it draining, then STOPPED). STOPPED tasks are
never listed.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from controlplane.discovery.ecs_api import CountingClient, describe_task_definition, describe_tasks, list_tasks
from controlplane.discovery.filters import TaskFilter
from controlplane.discovery.instances import InstanceAddresses
from controlplane.discovery.addresses import eni_address
from controlplane.discovery.state import ClusterState, TaskDefinition
from controlplane.discovery.task_shape import container_health, parse_task, task_version
from controlplane.discovery.task_table import Entry, Report, TaskTable
from controlplane.discovery.taskdefs import TaskDefinitionCache

UNKNOWN = "UNKNOWN"


class ReadResult(NamedTuple):
    """A cluster's view after a read, the calls the read made, and how many reports it applied."""

    state: ClusterState
    calls: Mapping[str, int]
    applied: int | None = None


class ClusterReader:
    """Reads clusters, keeping one task table per cluster. Raises on any API error: the caller
    keeps the last good view. The task-definition cache is shared by every cluster."""

    def __init__(
        self,
        ecs: Any,
        ec2: Any,
        task_definitions: TaskDefinitionCache | None = None,
        *,
        ssm: Any | None = None,
        task_filter: TaskFilter | None = None,
        instances: InstanceAddresses | None = None,
    ) -> None:
        self._ecs = ecs
        self._filter = task_filter or TaskFilter()
        # `is None`, not `or`: an empty cache is falsy, and a new one would not be shared.
        self.task_definitions = TaskDefinitionCache() if task_definitions is None else task_definitions
        self.instances = InstanceAddresses(ec2, ssm) if instances is None else instances
        self._tables: dict[str, TaskTable] = {}

    @property
    def ecs(self) -> Any:
        return self._ecs

    def forget(self, cluster: str) -> None:
        """Drop a cluster's table (the cluster was deleted)."""
        self._tables.pop(cluster, None)

    def cache_sizes(self) -> dict[str, int]:
        """Entries in each cache the reader keeps (all bounded: see each cache)."""
        return {
            "task_definitions": len(self.task_definitions),
            "container_instances": len(self.instances),
            "tasks": sum(len(t) for t in self._tables.values()),
            "tombstones": sum(t.tombstones for t in self._tables.values()),
            "change_log": sum(t.change_log_entries for t in self._tables.values()),
        }

    def table(self, cluster: str) -> TaskTable:
        table = self._tables.get(cluster)
        if table is None:
            table = self._tables[cluster] = TaskTable(cluster)
        return table

    def state(self, cluster: str) -> ClusterState:
        return self.table(cluster).state(time.time())

    def _counting(self) -> tuple[CountingClient, Counter[str]]:
        calls: Counter[str] = Counter()
        return CountingClient(self._ecs, calls), calls

    # -- reads ------------------------------------------------------------------------------

    def read(self, cluster: str) -> ReadResult:
        """Full read: the cluster's current tasks (running and draining), authoritative."""
        ecs, calls = self._counting()
        table = self.table(cluster)
        listed = list_tasks(ecs, cluster, "RUNNING")
        listed_set = set(listed)
        left = sorted(arn for arn in (e.task.arn for e in table.entries()) if arn not in listed_set)
        to_describe = [arn for arn in listed if not table.stopped_for_sure(arn)] + left
        raw_tasks = describe_tasks(ecs, cluster, to_describe)
        reports = self._reports(ecs, cluster, raw_tasks, from_event=False)
        changed = table.reconcile(reports, to_describe, time.time())
        return ReadResult(self.state(cluster), dict(calls), changed)

    def apply(self, cluster: str, changes: Iterable[Mapping[str, Any]], *, trust_details: bool = True) -> ReadResult:
        """Merge task-change event details into the table. `applied` counts the changes that were
        news (not duplicates, not older than what is known).

        A detail is used as is (no call) when it says everything a describe would, except health:
        events carry none, so tasks with a health-checked container are described too, together
        with the cluster's tasks still waiting for a first HEALTHY (a task stopping in a
        deployment is the sign that its replacement passed its checks). Without `trust_details`
        every named task is described. At most one DescribeTasks per 100 tasks.
        """
        ecs, calls = self._counting()
        table = self.table(cluster)
        now = time.time()
        newest: dict[str, Mapping[str, Any]] = {}
        for detail in changes:
            arn = str(detail.get("taskArn", ""))
            if not arn:
                continue
            previous = newest.get(arn)
            if previous is None or (task_version(detail) or 0) >= (task_version(previous) or 0):
                newest[arn] = detail
        usable: list[Mapping[str, Any]] = []
        to_describe: set[str] = set()
        for arn, detail in newest.items():
            if not table.is_news(arn, task_version(detail)):
                continue
            if trust_details and self._complete(ecs, detail):
                usable.append(detail)
            else:
                to_describe.add(arn)
        applied = 0
        for report in self._reports(ecs, cluster, usable, from_event=True):
            if table.apply_event(report, now):
                applied += 1
                entry = table.get(report.arn)
                if entry is not None and entry.health_checked:
                    to_describe.add(report.arn)
        if newest:
            to_describe.update(table.awaiting_health())
        applied += self._describe_into(ecs, cluster, sorted(to_describe), now)
        return ReadResult(self.state(cluster), dict(calls), applied)

    def refresh(self, cluster: str, *, every_health_check: bool) -> ReadResult:
        """Describe the tasks whose health we need (those awaiting a first HEALTHY, or with
        `every_health_check` all health-checked ones) and the suspects a full read left."""
        ecs, calls = self._counting()
        table = self.table(cluster)
        wanted = set(table.health_checked() if every_health_check else table.awaiting_health()) | table.suspects
        applied = self._describe_into(ecs, cluster, sorted(wanted), time.time())
        return ReadResult(self.state(cluster), dict(calls), applied)

    def _describe_into(self, ecs: CountingClient, cluster: str, arns: Sequence[str], now: float) -> int:
        if not arns:
            return 0
        table = self.table(cluster)
        raw_tasks = describe_tasks(ecs, cluster, arns)
        by_arn = {str(raw["taskArn"]): raw for raw in raw_tasks}
        applied = 0
        for report in self._reports(ecs, cluster, raw_tasks, from_event=False):
            raw = by_arn[report.arn]
            health = (str(raw.get("healthStatus", UNKNOWN)), container_health(raw))
            applied += table.apply_describe(report, now, health=health)
        table.forget_suspects(set(arns) - set(by_arn))
        return applied

    # -- reports ----------------------------------------------------------------------------

    def _reports(
        self, ecs: CountingClient, cluster: str, raw_tasks: Sequence[Mapping[str, Any]], *, from_event: bool
    ) -> list[Report]:
        table = self.table(cluster)
        reports: list[Report] = []
        live: list[Mapping[str, Any]] = []
        for raw in raw_tasks:
            arn, version = str(raw["taskArn"]), task_version(raw)
            if raw.get("lastStatus") == "STOPPED":
                # A STOPPED task takes no traffic and needs no address: skip its task definition too.
                reports.append(Report(arn, version, stopped=True))
            elif not self._filter.accepts(raw):
                reports.append(Report(arn, version))
            else:
                live.append(raw)
        definitions = {str(raw["taskDefinitionArn"]): self._task_definition(ecs, str(raw["taskDefinitionArn"])) for raw in live}
        # awsvpc tasks (EC2 ones included) are reached on their own ENI: only bridge/host tasks
        # need their container instance's address.
        self.instances.resolve(
            ecs,
            cluster,
            (
                str(raw["containerInstanceArn"])
                for raw in live
                if raw.get("containerInstanceArn") and definitions[str(raw["taskDefinitionArn"])].network_mode != "awsvpc"
            ),
        )
        for raw in live:
            arn = str(raw["taskArn"])
            definition = definitions[str(raw["taskDefinitionArn"])]
            known_health = None
            if from_event:
                known = table.get(arn)
                # A task first seen in an event: not checked yet, exactly as DescribeTasks would say
                # (every container UNKNOWN), so that event-fed and describe-fed replicas hold equal views.
                known_health = (
                    (known.task.health_status, known.task.container_health)
                    if known
                    else (UNKNOWN, {str(c.get("name")): UNKNOWN for c in raw.get("containers", ())})
                )
            task = parse_task(
                raw, cluster, definition, self.instances.address(raw.get("containerInstanceArn")), known_health=known_health
            )
            reports.append(Report(arn, task_version(raw), entry=Entry(task, definition, task_version(raw))))
        return reports

    def _task_definition(self, ecs: CountingClient, arn: str) -> TaskDefinition:
        return self.task_definitions.get(arn, lambda a: describe_task_definition(ecs, a))

    def _complete(self, ecs: CountingClient, detail: Mapping[str, Any]) -> bool:
        """True when an event detail says all a describe would (for what we read; health aside)."""
        if task_version(detail) is None or not detail.get("taskDefinitionArn") or "lastStatus" not in detail:
            return False
        if detail.get("lastStatus") != "RUNNING":
            return True
        # A RUNNING task must show where it listens, or we describe it.
        if "containers" not in detail:
            return False
        if not self._filter.accepts(detail):
            return True
        task_definition = self._task_definition(ecs, str(detail["taskDefinitionArn"]))
        if not any(c.port_mappings for c in task_definition.containers):
            return True
        if task_definition.network_mode == "awsvpc":
            return eni_address(detail) is not None
        return bool(detail.get("containerInstanceArn"))
