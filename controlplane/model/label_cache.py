"""Parsed labels by task-definition ARN: ECS task definitions are immutable per ARN, so each is
parsed once, however many tasks run it and however many meshes are built. Bounded in bytes."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from controlplane.discovery.state import TaskDefinition
from controlplane.model.labels import ServiceDeclaration
from controlplane.model.mesh import ServiceProblem

# What one parsed task definition keeps in memory, estimated: a fixed part (the entry, the
# declarations' settings objects) and a share per label character (labels are parsed into
# strings, tuples and small frozen objects of about that size).
ENTRY_BYTES = 4096
BYTES_PER_LABEL_CHARACTER = 4
# Tens of thousands of task definitions at a few KiB each.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ParsedTaskDefinition:
    """Every service one task definition declares, and every problem of its labels."""

    declarations: tuple[ServiceDeclaration, ...]
    problems: tuple[ServiceProblem, ...]


def estimated_bytes(task_definition: TaskDefinition) -> int:
    characters = sum(len(k) + len(v) for c in task_definition.containers for k, v in c.labels.items())
    return ENTRY_BYTES + BYTES_PER_LABEL_CHARACTER * characters


class TaskDefinitionLabels:
    """Parsed labels by task-definition ARN, the least recently used dropped beyond `max_bytes`
    (a dropped one is parsed again if a task of it shows up again)."""

    def __init__(self, parse: Callable[[TaskDefinition], ParsedTaskDefinition], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._parse = parse
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[ParsedTaskDefinition, int]] = OrderedDict()
        self._bytes = 0
        self.parses = 0  # task definitions parsed so far (tests: once per ARN)

    def get(self, task_definition: TaskDefinition) -> ParsedTaskDefinition:
        found = self._entries.get(task_definition.arn)
        if found is not None:
            self._entries.move_to_end(task_definition.arn)
            return found[0]
        parsed = self._parse(task_definition)
        self.parses += 1
        size = estimated_bytes(task_definition)
        self._entries[task_definition.arn] = (parsed, size)
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted
        return parsed

    def size_bytes(self) -> int:
        """Estimated memory held (the controlplane_label_cache_bytes metric)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
