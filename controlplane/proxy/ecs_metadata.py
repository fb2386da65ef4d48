"""Who this ECS task is, from the task metadata endpoint v4, for the bootstrap of the proxy inside it.

ECS injects ECS_CONTAINER_METADATA_URI_V4 into every container (Fargate platform 1.4+, EC2 agent
1.39+); `GET $ECS_CONTAINER_METADATA_URI_V4/task` answers with the task's ARN, cluster, availability
zone and every container with its Docker labels. Read once at container start, so plain blocking
urllib is enough.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from controlplane.errors import EcsMetadataError

METADATA_URI_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# ECS's own containers (the awsvpc pause container...) are not the app.
_APP_CONTAINER_TYPE = "NORMAL"


@dataclass(frozen=True, slots=True)
class ContainerMetadata:
    name: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    type: str = _APP_CONTAINER_TYPE


@dataclass(frozen=True, slots=True)
class TaskMetadata:
    """The part of the /task document a proxy bootstrap needs."""

    task_arn: str
    cluster: str
    family: str
    revision: str
    availability_zone: str
    containers: tuple[ContainerMetadata, ...] = ()

    @property
    def task_id(self) -> str:
        return self.task_arn.rsplit("/", 1)[-1]

    @property
    def node_id(self) -> str:
        """`<cluster>/<task id>`: unique per task, short enough for `controlplane config NODE_ID`."""
        return f"{self.cluster}/{self.task_id}"

    def label(self, name: str) -> str | None:
        """The value of a Docker label on the task's app containers (the first that has it)."""
        for container in self.containers:
            if container.type == _APP_CONTAINER_TYPE and name in container.labels:
                return container.labels[name].strip()
        return None


def parse_task_metadata(document: object) -> TaskMetadata:
    """The /task JSON -> TaskMetadata; a missing field is an error that names it."""
    if not isinstance(document, Mapping):
        raise EcsMetadataError("task metadata: expected a JSON object from ${ECS_CONTAINER_METADATA_URI_V4}/task")
    for key in ("TaskARN", "Cluster"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise EcsMetadataError(f"task metadata: field {key} is missing (is this the /task document of metadata endpoint v4?)")
    containers = []
    for raw in document.get("Containers") or ():
        if isinstance(raw, Mapping) and isinstance(raw.get("Name"), str):
            labels = raw.get("Labels")
            labels = labels if isinstance(labels, Mapping) else {}
            containers.append(
                ContainerMetadata(
                    name=raw["Name"],
                    labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
                    type=str(raw.get("Type", _APP_CONTAINER_TYPE)),
                )
            )
    cluster = str(document["Cluster"])
    return TaskMetadata(
        task_arn=str(document["TaskARN"]),
        # Fargate answers with the cluster's ARN, EC2 with its name: keep the name.
        cluster=cluster.rsplit("cluster/", 1)[-1] if cluster.startswith("arn:") else cluster,
        family=str(document.get("Family", "")),
        revision=str(document.get("Revision", "")),
        # Only Fargate (platform 1.4+) and recent EC2 agents report it; empty means no locality.
        availability_zone=str(document.get("AvailabilityZone", "")),
        containers=tuple(containers),
    )


def read_task_metadata(
    environ: Mapping[str, str] | None = None, *, timeout: float = 2.0, attempts: int = 5, backoff: float = 0.2
) -> TaskMetadata:
    """GET ${ECS_CONTAINER_METADATA_URI_V4}/task, retried briefly: the endpoint can lag the container's start."""
    environ = os.environ if environ is None else environ
    base = environ.get(METADATA_URI_ENV, "").rstrip("/")
    if not base:
        raise EcsMetadataError(f"{METADATA_URI_ENV} is not set: --from-ecs-metadata works inside an ECS task only")
    url = f"{base}/task"
    last_error = ""
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (ECS-provided http URL)
                body = response.read()
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last_error = str(getattr(error, "reason", error))
        else:
            try:
                return parse_task_metadata(json.loads(body))
            except ValueError as error:
                raise EcsMetadataError(f"task metadata from {url}: not JSON ({error})") from None
        if attempt + 1 < attempts:
            time.sleep(backoff * 2**attempt)
    raise EcsMetadataError(f"task metadata from {url}: {last_error} after {attempts} attempts")
