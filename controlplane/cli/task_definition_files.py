"""Task definitions from JSON files, for `controlplane render --task-definition FILE`.

Accepted shapes: the output of `aws ecs describe-task-definition` (`{"taskDefinition": {...}}`),
the input of `aws ecs register-task-definition --cli-input-json` (`{"family": ...,
"containerDefinitions": [...]}`), or a bare `taskDefinition` object. Every mistake is a
TaskDefinitionFileError naming the file and what to fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from controlplane.discovery.state import TaskDefinition
from controlplane.discovery.taskdefs import parse_task_definition
from controlplane.errors import ControlPlaneError
from controlplane.model.problems import shown

_FAMILY = re.compile(r"[A-Za-z0-9_-]{1,255}")
_CONTAINER = re.compile(r"[A-Za-z0-9_-]{1,255}")
MAX_FILE_BYTES = 1 << 20  # ECS refuses task definitions over 64 KiB; a file far larger is a mistake


class TaskDefinitionFileError(ControlPlaneError):
    """A task definition file that is not one."""


def load_task_definition(path: Path, revision_after: Mapping[str, int] | None = None) -> TaskDefinition:
    """The task definition in `path`. Without a revision (RegisterTaskDefinition input) it gets the
    next revision after `revision_after[family]` (the live ones), so that its settings are the newest."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise TaskDefinitionFileError(f"{path}: {size} bytes; a task definition file is at most {MAX_FILE_BYTES}")
        raw = json.loads(path.read_bytes())
    except OSError as error:
        raise TaskDefinitionFileError(f"{path}: cannot read it: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise TaskDefinitionFileError(f"{path}: not JSON: {error}") from None
    return task_definition_from_json(raw, str(path), revision_after or {})


def _fail(source: str, message: str) -> TaskDefinitionFileError:
    return TaskDefinitionFileError(f"{source}: {message}")


def task_definition_from_json(raw: Any, source: str, revision_after: Mapping[str, int]) -> TaskDefinition:
    if isinstance(raw, dict) and isinstance(raw.get("taskDefinition"), dict):
        raw = raw["taskDefinition"]
    if not isinstance(raw, dict) or "containerDefinitions" not in raw:
        raise _fail(
            source,
            "expected a task definition: DescribeTaskDefinition output ({\"taskDefinition\": {...}}) or "
            "RegisterTaskDefinition input ({\"family\": ..., \"containerDefinitions\": [...]})",
        )
    family = raw.get("family")
    if not isinstance(family, str) or not _FAMILY.fullmatch(family):
        raise _fail(source, f"family {shown(str(family))}: expected 1-255 letters, digits, '-' and '_'")
    revision = raw.get("revision")
    if revision is None:
        revision = revision_after.get(family, 0) + 1
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise _fail(source, f"revision {shown(str(revision))}: expected a positive integer")
    containers = raw["containerDefinitions"]
    if not isinstance(containers, list) or not containers:
        raise _fail(source, "containerDefinitions: expected a non-empty list of container definitions")
    for index, container in enumerate(containers):
        _check_container(source, index, container)
    arn = raw.get("taskDefinitionArn")
    if not isinstance(arn, str) or not arn:
        arn = f"file:{source}#{family}:{revision}"
    shaped = {**raw, "taskDefinitionArn": arn, "family": family, "revision": revision}
    try:
        return parse_task_definition(shaped)
    except (KeyError, TypeError, ValueError) as error:  # _check_container should have said it first
        raise _fail(source, f"cannot read it as a task definition: {error!r}") from None


def _check_container(source: str, index: int, container: Any) -> None:
    where = f"containerDefinitions[{index}]"
    if not isinstance(container, dict):
        raise _fail(source, f"{where}: expected an object")
    name = container.get("name")
    if not isinstance(name, str) or not _CONTAINER.fullmatch(name):
        raise _fail(source, f"{where}.name {shown(str(name))}: expected 1-255 letters, digits, '-' and '_'")
    labels = container.get("dockerLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise _fail(source, f"{where} ({name}).dockerLabels: expected an object of string keys and string values (ECS refuses others)")
    mappings = container.get("portMappings") or []
    if not isinstance(mappings, list):
        raise _fail(source, f"{where} ({name}).portMappings: expected a list")
    for position, mapping in enumerate(mappings):
        if not isinstance(mapping, dict):
            raise _fail(source, f"{where} ({name}).portMappings[{position}]: expected an object")
        for key in ("containerPort", "hostPort"):
            value = mapping.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535):
                raise _fail(source, f"{where} ({name}).portMappings[{position}].{key} {shown(str(value))}: expected an integer 0-65535")
