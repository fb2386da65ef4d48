"""The ECS calls discovery makes, counted by operation: listing and describing. Blocking I/O."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator, Sequence

DESCRIBE_TASKS_BATCH = 100
DESCRIBE_SERVICES_BATCH = 10


class DescribeFailure(RuntimeError):
    """DescribeTasks answered with failures other than MISSING: the read must not drop those tasks."""


def batches(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _snake(operation: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in operation).lstrip("_")


class CountingClient:
    """Wraps a boto3 client and counts the API calls made through it, by operation."""

    def __init__(self, client: Any, counter: Counter[str], prefix: str = "") -> None:
        self._client = client
        self.counter = counter
        self._prefix = prefix

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        self.counter[self._prefix + operation] += 1
        return getattr(self._client, _snake(operation))(**kwargs)  # type: ignore[no-any-return]


def list_tasks(ecs: CountingClient, cluster: str, desired_status: str = "RUNNING") -> list[str]:
    """Every task ARN with this desiredStatus (100 a page, every page followed)."""
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


def describe_tasks(ecs: CountingClient, cluster: str, arns: Sequence[str]) -> list[dict[str, Any]]:
    """Every named task that ECS still knows (100 per call). Any failed page fails the whole read:
    a task is never dropped because the call that would have shown it failed."""
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


def describe_task_definition(ecs: CountingClient, arn: str) -> dict[str, Any]:
    return ecs.call("DescribeTaskDefinition", taskDefinition=arn)["taskDefinition"]  # type: ignore[no-any-return]


def list_clusters(ecs: CountingClient) -> list[str]:
    arns: list[str] = []
    token: str | None = None
    while True:
        response = ecs.call("ListClusters", **({"nextToken": token} if token else {}))
        arns.extend(response.get("clusterArns", ()))
        token = response.get("nextToken")
        if not token:
            return arns
