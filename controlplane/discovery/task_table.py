"""One cluster's task table: what discovery knows of each task, and the rules that merge new
reports (events, describes, full reads) into it. Pure (no I/O).

- ECS's per-task `version` orders reports: an event not newer than what we hold is a duplicate
  or arrived out of order, and changes nothing. A describe at the same version is taken (it
  carries health, which has no version and no event).
- Health comes only from describes: an event never changes the health we know.
- STOPPED is final: a tombstone keeps a stopped task from coming back through a late report.
- A full read is authoritative over what only events said. When they disagree (an event newer
  than ECS's answer, or a STOPPED event for a task ECS still runs), the event's state is kept
  once, because ECS's reads are eventually consistent, and the task becomes a suspect: the next
  describe of it decides, whatever the versions. A forged or reordered event therefore lasts at
  most until the resync after it plus one verification describe.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Mapping

from controlplane.discovery.state import ChangeLog, ClusterState, Task, TaskDefinition

# How long a tombstone is kept: longer than any event can arrive late (EventBridge retries for up
# to 24 h, but SQS messages of a stopped task are redelivered within minutes).
TOMBSTONE_SECONDS = 3600.0
STOPPED = "STOPPED"
HEALTHY = "HEALTHY"


@dataclass(frozen=True, slots=True)
class Entry:
    """A live task, the task definition it runs, and where its state came from."""

    task: Task
    task_definition: TaskDefinition
    version: int | None
    # True while the state is an event's that no describe has confirmed.
    from_event: bool = False

    @property
    def awaiting_health(self) -> bool:
        """Running, wanted, with a health-checked container that has not reported HEALTHY."""
        task = self.task
        if task.last_status != "RUNNING" or task.desired_status != "RUNNING":
            return False
        return any(
            c.health_check and task.container_health.get(c.name) != HEALTHY for c in self.task_definition.containers
        )

    @property
    def health_checked(self) -> bool:
        task = self.task
        return task.last_status == "RUNNING" and task.desired_status == "RUNNING" and self.task_definition.health_checked


@dataclass(frozen=True, slots=True)
class Tombstone:
    at: float
    version: int | None
    # Seen STOPPED by a describe (final), not only claimed by an event.
    confirmed: bool


@dataclass(frozen=True, slots=True)
class Report:
    """What a describe or an event said about one task: live (entry), stopped, or filtered out."""

    arn: str
    version: int | None
    entry: Entry | None = None
    stopped: bool = False


def _newer(version: int | None, known: int | None, *, or_equal: bool) -> bool:
    if version is None or known is None:
        return True
    return version >= known if or_equal else version > known


class TaskTable:
    def __init__(self, cluster: str) -> None:
        self.cluster = cluster
        self._live: dict[str, Entry] = {}
        self._changes = ChangeLog()  # which tasks changed, for the model (see ClusterState.changes)
        self._last: ClusterState | None = None  # the last view made, the next one is made from
        self._definitions: dict[str, TaskDefinition] = {}  # of live tasks
        self._definition_uses: dict[str, int] = {}
        self._definitions_moved = False
        self._tombstones: dict[str, Tombstone] = {}
        self._suspects: set[str] = set()

    # -- queries ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, arn: object) -> bool:
        return arn in self._live

    def get(self, arn: str) -> Entry | None:
        return self._live.get(arn)

    def entries(self) -> Iterator[Entry]:
        return iter(self._live.values())

    @property
    def change_log_entries(self) -> int:
        return len(self._changes)

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def suspects(self) -> frozenset[str]:
        return frozenset(self._suspects)

    def stopped_for_sure(self, arn: str) -> bool:
        tombstone = self._tombstones.get(arn)
        return tombstone is not None and tombstone.confirmed

    def is_news(self, arn: str, version: int | None) -> bool:
        """Whether an event at `version` says something we do not know yet."""
        if arn in self._tombstones:
            return False
        known = self._live.get(arn)
        return known is None or _newer(version, known.version, or_equal=False)

    def awaiting_health(self) -> list[str]:
        return sorted(arn for arn, entry in self._live.items() if entry.awaiting_health)

    def health_checked(self) -> list[str]:
        return sorted(arn for arn, entry in self._live.items() if entry.health_checked)

    def state(self, synced_at: float) -> ClusterState:
        """The table as a view. Made from the last view when the change log says what changed
        since: a change costs what it touches (and a copy of the tuple), not a sort of every task."""
        position = self._changes.position
        last = self._last
        changed = self._changes.between(last.position, position) if last is not None else None
        if last is None or changed is None:
            tasks = tuple(e.task for e in sorted(self._live.values(), key=_entry_arn))
        else:
            tasks = self._patched(last.tasks, changed) if changed else last.tasks
        if last is None or self._definitions_moved:
            definitions: Mapping[str, TaskDefinition] = dict(self._definitions)
        else:
            definitions = last.task_definitions
        self._definitions_moved = False
        self._last = ClusterState(
            cluster=self.cluster,
            tasks=tasks,
            task_definitions=definitions,
            synced_at=synced_at,
            changes=self._changes,
            position=position,
        )
        return self._last

    def _patched(self, tasks: tuple[Task, ...], changed: Iterable[str]) -> tuple[Task, ...]:
        """`tasks` (in ARN order) with the changed tasks replaced, inserted or taken out."""
        patched = list(tasks)
        for arn in changed:
            index = bisect.bisect_left(patched, arn, key=_task_arn)
            present = index < len(patched) and patched[index].arn == arn
            entry = self._live.get(arn)
            if entry is None:
                if present:
                    del patched[index]
            elif present:
                patched[index] = entry.task
            else:
                patched.insert(index, entry.task)
        return tuple(patched)

    # -- merging -----------------------------------------------------------------------------

    def apply_event(self, report: Report, now: float) -> bool:
        """An event's report; False when it is old news. Health stays as known (see parse_task)."""
        if not self.is_news(report.arn, report.version):
            return False
        if report.stopped:
            self._tombstones[report.arn] = Tombstone(now, report.version, confirmed=False)
            self._drop(report.arn)
        elif report.entry is None:
            self._drop(report.arn)
        else:
            self._set(report.arn, replace(report.entry, from_event=True))
        return True

    def apply_describe(self, report: Report, now: float, *, health: tuple[str, Mapping[str, str]] | None) -> bool:
        """A describe's report, outside a full read. A suspect's describe decides; otherwise an
        older describe changes only the health, which events never carry."""
        arn = report.arn
        if arn in self._suspects:
            self._suspects.discard(arn)
            self._take(report, now)
            return True
        if arn in self._tombstones:
            return False
        known = self._live.get(arn)
        if known is not None and not _newer(report.version, known.version, or_equal=True):
            if health is not None and not report.stopped:
                self._set(arn, replace(known, task=replace(known.task, health_status=health[0], container_health=dict(health[1]))))
            return False
        self._take(report, now)
        return True

    def reconcile(self, reports: Iterable[Report], described: Iterable[str], now: float) -> int:
        """A full read: `reports` for every task ECS returned out of the `described` ARNs (the
        RUNNING list plus the tasks we track that left it). Tasks described but not returned no
        longer exist. Returns the number of reports taken (not kept back as suspects)."""
        returned: set[str] = set()
        taken = 0
        for report in reports:
            arn = report.arn
            returned.add(arn)
            known = self._live.get(arn)
            tombstone = self._tombstones.get(arn)
            conflict = (tombstone is not None and not tombstone.confirmed and not report.stopped) or (
                known is not None
                and known.from_event
                and report.version is not None
                and known.version is not None
                and report.version < known.version
            )
            if conflict and arn not in self._suspects:
                # Eventually consistent read, or a bad event: keep it once, verify soon.
                self._suspects.add(arn)
                continue
            self._suspects.discard(arn)
            if tombstone is not None and tombstone.confirmed:
                continue
            self._take(report, now)
            taken += 1
        for arn in set(described) - returned:
            # ECS no longer knows the task (long stopped): nothing to serve or drain.
            self._drop(arn)
            self._suspects.discard(arn)
        self._expire(now)
        return taken

    def forget_suspects(self, arns: Iterable[str]) -> None:
        """Suspects ECS no longer knows: their tombstone (if any) stays, there is nothing to verify."""
        self._suspects.difference_update(arns)

    def _take(self, report: Report, now: float) -> None:
        arn = report.arn
        if report.stopped:
            self._tombstones[arn] = Tombstone(now, report.version, confirmed=True)
            self._drop(arn)
            return
        self._tombstones.pop(arn, None)
        if report.entry is None:
            self._drop(arn)  # filtered out
        else:
            self._set(arn, report.entry if not report.entry.from_event else replace(report.entry, from_event=False))

    def _set(self, arn: str, entry: Entry) -> None:
        """Hold `entry`; a task that did not change keeps its Task object, so that whoever reads the
        states tells changed tasks by identity, and the change log names only tasks that changed."""
        known = self._live.get(arn)
        if known is not None and known.task is not entry.task and known.task == entry.task:
            entry = replace(entry, task=known.task)
        if known is None or known.task is not entry.task:
            self._changes.record(arn)
        if known is None or known.task_definition.arn != entry.task_definition.arn:
            self._use(entry.task_definition, 1)
            if known is not None:
                self._use(known.task_definition, -1)
        self._live[arn] = entry

    def _drop(self, arn: str) -> None:
        known = self._live.pop(arn, None)
        if known is not None:
            self._changes.record(arn)
            self._use(known.task_definition, -1)

    def _use(self, task_definition: TaskDefinition, delta: int) -> None:
        """Count the live tasks of each task definition (a view names those with any)."""
        arn = task_definition.arn
        uses = self._definition_uses.get(arn, 0) + delta
        if uses > 0:
            self._definition_uses[arn] = uses
            if arn not in self._definitions:
                self._definitions[arn], self._definitions_moved = task_definition, True
        else:
            self._definition_uses.pop(arn, None)
            self._definitions.pop(arn, None)
            self._definitions_moved = True

    def _expire(self, now: float) -> None:
        if any(now - t.at >= TOMBSTONE_SECONDS for t in self._tombstones.values()):
            self._tombstones = {arn: t for arn, t in self._tombstones.items() if now - t.at < TOMBSTONE_SECONDS}


def _entry_arn(entry: Entry) -> str:
    return entry.task.arn


def _task_arn(task: Task) -> str:
    return task.arn
