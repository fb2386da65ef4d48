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

from dataclasses import dataclass, replace
from typing import Iterable, Iterator, Mapping

from controlplane.discovery.state import ClusterState, Task, TaskDefinition

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
        entries = sorted(self._live.values(), key=lambda e: e.task.arn)
        return ClusterState(
            cluster=self.cluster,
            tasks=tuple(e.task for e in entries),
            task_definitions={e.task_definition.arn: e.task_definition for e in entries},
            synced_at=synced_at,
        )

    # -- merging -----------------------------------------------------------------------------

    def apply_event(self, report: Report, now: float) -> bool:
        """An event's report; False when it is old news. Health stays as known (see parse_task)."""
        if not self.is_news(report.arn, report.version):
            return False
        if report.stopped:
            self._tombstones[report.arn] = Tombstone(now, report.version, confirmed=False)
            self._live.pop(report.arn, None)
        elif report.entry is None:
            self._live.pop(report.arn, None)
        else:
            self._live[report.arn] = replace(report.entry, from_event=True)
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
                self._live[arn] = replace(known, task=replace(known.task, health_status=health[0], container_health=dict(health[1])))
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
            self._live.pop(arn, None)
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
            self._live.pop(arn, None)
            return
        self._tombstones.pop(arn, None)
        if report.entry is None:
            self._live.pop(arn, None)  # filtered out
        else:
            self._live[arn] = report.entry if not report.entry.from_event else replace(report.entry, from_event=False)

    def _expire(self, now: float) -> None:
        if any(now - t.at >= TOMBSTONE_SECONDS for t in self._tombstones.values()):
            self._tombstones = {arn: t for arn, t in self._tombstones.items() if now - t.at < TOMBSTONE_SECONDS}
