"""Task definition families and their revisions, with the defaults AWS fills in on registration."""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog

from controlplane.localecs.errors import ClientException
from controlplane.localecs.model import Arns, TaskDefinition

NETWORK_MODES = ("bridge", "host", "awsvpc", "none")


def _default_container(container: dict[str, Any], network_mode: str) -> dict[str, Any]:
    # AWS fills these defaults in on registration and returns them.
    result = dict(container)
    result.setdefault("essential", True)
    result.setdefault("cpu", 0)
    result.setdefault("environment", [])
    result.setdefault("mountPoints", [])
    result.setdefault("volumesFrom", [])
    mappings = []
    for mapping in result.get("portMappings", []):
        mapping = dict(mapping)
        mapping.setdefault("protocol", "tcp")
        if network_mode in ("awsvpc", "host"):
            mapping.setdefault("hostPort", mapping.get("containerPort"))
        mappings.append(mapping)
    result["portMappings"] = mappings
    return result


class TaskDefinitions:
    """Every revision of every family; a revision is immutable once registered."""

    def __init__(self, lock: threading.RLock, arns: Arns) -> None:
        self._lock = lock
        self._arns = arns
        self._families: dict[str, list[TaskDefinition]] = {}
        self._log = structlog.get_logger()

    def register(self, body: dict[str, Any], tags: list[dict[str, str]] | None = None) -> TaskDefinition:
        """Register the next revision of ``body["family"]``."""
        family = body.get("family")
        if not family:
            raise ClientException("Family is required.")
        containers = body.get("containerDefinitions") or []
        if not containers:
            raise ClientException("Container list cannot be empty.")
        for container in containers:
            if not container.get("name"):
                raise ClientException("Container.name should not be null or empty.")
        network_mode = body.get("networkMode", "bridge")
        if network_mode not in NETWORK_MODES:
            raise ClientException(f"Network mode {network_mode} is not supported.")
        with self._lock:
            revisions = self._families.setdefault(family, [])
            revision = len(revisions) + 1
            arn = self._arns.task_definition(family, revision)
            echoed = dict(body)
            echoed["networkMode"] = network_mode
            echoed["containerDefinitions"] = [_default_container(c, network_mode) for c in containers]
            definition = TaskDefinition(arn=arn, family=family, revision=revision, body=echoed, tags=list(tags or []))
            revisions.append(definition)
        self._log.info("local_ecs.task_definition_registered", task_definition=arn)
        return definition

    def get(self, ref: str) -> TaskDefinition:
        """A task definition by ``family`` (latest ACTIVE), ``family:revision`` or ARN."""
        name = ref.split(":task-definition/", 1)[1] if ":task-definition/" in ref else ref
        family, _, revision = name.partition(":")
        with self._lock:
            revisions = self._families.get(family, [])
            if revision:
                if revision.isdigit() and 0 < int(revision) <= len(revisions):
                    return revisions[int(revision) - 1]
            else:
                active = [d for d in revisions if d.status == "ACTIVE"]
                if active:
                    return active[-1]
        raise ClientException("Unable to describe task definition.")

    def all(self) -> list[TaskDefinition]:
        """Every revision of every family, in registration order per family."""
        with self._lock:
            return [d for revisions in self._families.values() for d in revisions]

    def deregister(self, ref: str) -> TaskDefinition:
        """Mark a revision INACTIVE; running tasks and services keep using it."""
        if ":" not in ref.split("task-definition/")[-1]:
            raise ClientException("Invalid revision number. Number: ")
        definition = self.get(ref)
        with self._lock:
            definition.status = "INACTIVE"
            definition.deregistered_at = time.time()
        return definition
