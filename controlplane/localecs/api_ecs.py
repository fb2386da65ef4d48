"""ECS JSON API: one function per operation, from request parameters to AWS response shapes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.errors import (
    ClusterNotFoundException,
    InvalidParameterException,
    ServiceNotFoundException,
    UnsupportedOperation,
)
from controlplane.localecs.model import Cluster, Service
from controlplane.localecs.render import (
    render_cluster,
    render_container_instance,
    render_service,
    render_task,
    render_task_definition,
)

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."

Params = dict[str, Any]
Response = dict[str, Any]


def _require(params: Params, key: str) -> Any:
    value = params.get(key)
    if value is None or value == "":
        raise InvalidParameterException(f"{key} is required.")
    return value


def _page(items: list[str], params: Params, default_max: int, max_max: int = 100) -> tuple[list[str], str | None]:
    """One page of ``items``; the token is an opaque offset."""
    max_results = params.get("maxResults") or default_max
    if not 1 <= int(max_results) <= max_max:
        raise InvalidParameterException(f"maxResults must be between 1 and {max_max}.")
    offset = 0
    token = params.get("nextToken")
    if token:
        try:
            offset = int(json.loads(base64.b64decode(token))["offset"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameterException("Invalid nextToken.") from exc
    end = offset + int(max_results)
    next_token = base64.b64encode(json.dumps({"offset": end}).encode()).decode() if end < len(items) else None
    return items[offset:end], next_token


def _paged(key: str, items: list[str], params: Params, default_max: int) -> Response:
    page, token = _page(items, params, default_max)
    response: Response = {key: page}
    if token:
        response["nextToken"] = token
    return response


def _cluster(ecs: LocalEcs, cluster: Cluster, include: list[str]) -> Response:
    return render_cluster(cluster, ecs.tasks.of_cluster(cluster), ecs.services.of_cluster(cluster), include)


def _service(ecs: LocalEcs, service: Service) -> Response:
    return render_service(service, ecs.tasks.of_service(service))


# --- operations ---------------------------------------------------------------------------


def create_cluster(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.create(params.get("clusterName") or "default", tags=params.get("tags"))
    return {"cluster": _cluster(ecs, cluster, ["TAGS"])}


def list_clusters(ecs: LocalEcs, params: Params) -> Response:
    return _paged("clusterArns", [c.arn for c in ecs.clusters.all()], params, 100)


def describe_clusters(ecs: LocalEcs, params: Params) -> Response:
    clusters, failures = [], []
    for ref in params.get("clusters") or ["default"]:
        cluster = ecs.clusters.find(ref)
        if cluster is None:
            failures.append({"arn": ref if ref.startswith("arn:") else ecs.arns.cluster(ref), "reason": "MISSING"})
        else:
            clusters.append(_cluster(ecs, cluster, params.get("include") or []))
    return {"clusters": clusters, "failures": failures}


def list_container_instances(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.get(params.get("cluster"))
    return _paged("containerInstanceArns", [i.arn for i in cluster.instances], params, 100)


def describe_container_instances(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.get(params.get("cluster"))
    refs = _require(params, "containerInstances")
    if len(refs) > 100:
        raise InvalidParameterException("Too many containerInstances. Maximum is 100.")
    found, failures = [], []
    for ref in refs:
        instance_id = ref.rsplit("/", 1)[-1]
        instance = next((i for i in cluster.instances if i.id == instance_id), None)
        if instance is None:
            failures.append({"arn": ref, "reason": "MISSING"})
        else:
            found.append(render_container_instance(instance, ecs.tasks.of_cluster(cluster)))
    return {"containerInstances": found, "failures": failures}


def register_task_definition(ecs: LocalEcs, params: Params) -> Response:
    body = {k: v for k, v in params.items() if k != "tags"}
    definition = ecs.task_definitions.register(body, tags=params.get("tags"))
    return {"taskDefinition": render_task_definition(definition), "tags": list(definition.tags)}


def deregister_task_definition(ecs: LocalEcs, params: Params) -> Response:
    definition = ecs.task_definitions.deregister(_require(params, "taskDefinition"))
    return {"taskDefinition": render_task_definition(definition)}


def describe_task_definition(ecs: LocalEcs, params: Params) -> Response:
    definition = ecs.task_definitions.get(_require(params, "taskDefinition"))
    response: Response = {"taskDefinition": render_task_definition(definition)}
    if "TAGS" in (params.get("include") or []):
        response["tags"] = list(definition.tags)
    return response


def list_task_definitions(ecs: LocalEcs, params: Params) -> Response:
    status = params.get("status") or "ACTIVE"
    prefix = params.get("familyPrefix")
    arns = [
        d.arn
        for d in ecs.task_definitions.all()
        if d.status == status and (not prefix or d.family.startswith(prefix))
    ]
    if params.get("sort") == "DESC":
        arns.reverse()
    return _paged("taskDefinitionArns", arns, params, 100)


def list_task_definition_families(ecs: LocalEcs, params: Params) -> Response:
    prefix = params.get("familyPrefix")
    families = sorted({d.family for d in ecs.task_definitions.all() if not prefix or d.family.startswith(prefix)})
    return _paged("families", families, params, 100)


def run_task(ecs: LocalEcs, params: Params) -> Response:
    tasks = ecs.tasks.run(
        ecs.clusters.get(params.get("cluster")),
        ecs.task_definitions.get(_require(params, "taskDefinition")),
        count=int(params.get("count") or 1),
        started_by=params.get("startedBy"),
        group=params.get("group"),
        launch_type=params.get("launchType"),
        network_configuration=params.get("networkConfiguration"),
        overrides=params.get("overrides"),
        tags=params.get("tags"),
    )
    return {"tasks": [render_task(t) for t in tasks], "failures": []}


def stop_task(ecs: LocalEcs, params: Params) -> Response:
    task = ecs.tasks.get(ecs.clusters.get(params.get("cluster")), _require(params, "task"))
    ecs.tasks.stop(task, "UserInitiated", params.get("reason") or "Task stopped by user")
    return {"task": render_task(task)}


def list_tasks(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.get(params.get("cluster"))
    desired = params.get("desiredStatus") or "RUNNING"
    if desired not in ("RUNNING", "PENDING", "STOPPED"):
        raise InvalidParameterException("desiredStatus must be one of RUNNING, PENDING, STOPPED.")
    service_name = params.get("serviceName")
    if service_name and ecs.services.find(cluster, service_name) is None:
        raise ServiceNotFoundException("Service not found.")
    family = params.get("family")
    started_by = params.get("startedBy")
    instance = params.get("containerInstance")
    launch_type = params.get("launchType")
    tasks = sorted(ecs.tasks.of_cluster(cluster), key=lambda t: (t.created_at, t.arn))
    arns = [
        t.arn
        for t in tasks
        if t.desired_status == desired
        and (not service_name or t.service_name == service_name.rsplit("/", 1)[-1])
        and (not family or t.task_definition.family == family)
        and (not started_by or t.started_by == started_by)
        and (not launch_type or t.launch_type == launch_type)
        and (
            not instance
            or (t.container_instance is not None and t.container_instance.id == instance.rsplit("/", 1)[-1])
        )
    ]
    return _paged("taskArns", arns, params, 100)


def describe_tasks(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.get(params.get("cluster"))
    refs = _require(params, "tasks")
    if len(refs) > 100:
        raise InvalidParameterException("Tasks cannot be longer than 100.")
    found, failures = [], []
    for ref in refs:
        task = ecs.tasks.find(cluster, ref)
        if task is None:
            failures.append({"arn": ref, "reason": "MISSING"})
        else:
            found.append(render_task(task))
    return {"tasks": found, "failures": failures}


def _deployment_configuration(params: Params) -> tuple[int | None, int | None]:
    config = params.get("deploymentConfiguration") or {}
    return config.get("maximumPercent"), config.get("minimumHealthyPercent")


def create_service(ecs: LocalEcs, params: Params) -> Response:
    if params.get("schedulingStrategy", "REPLICA") != "REPLICA":
        raise UnsupportedOperation("Only the REPLICA scheduling strategy is supported by the local ECS.")
    maximum, minimum = _deployment_configuration(params)
    service = ecs.services.create(
        ecs.clusters.get(params.get("cluster")),
        _require(params, "serviceName"),
        ecs.task_definitions.get(_require(params, "taskDefinition")),
        desired_count=int(params.get("desiredCount") or 0),
        launch_type=params.get("launchType"),
        network_configuration=params.get("networkConfiguration"),
        maximum_percent=maximum,
        minimum_healthy_percent=minimum,
        health_check_grace_period_seconds=params.get("healthCheckGracePeriodSeconds"),
        tags=params.get("tags"),
        load_balancers=params.get("loadBalancers"),
    )
    return {"service": _service(ecs, service)}


def update_service(ecs: LocalEcs, params: Params) -> Response:
    maximum, minimum = _deployment_configuration(params)
    service = ecs.services.get(ecs.clusters.get(params.get("cluster")), _require(params, "service"))
    definition = ecs.task_definitions.get(params["taskDefinition"]) if params.get("taskDefinition") else None
    service = ecs.services.update(
        service,
        desired_count=params.get("desiredCount"),
        definition=definition,
        force_new_deployment=bool(params.get("forceNewDeployment")),
        maximum_percent=maximum,
        minimum_healthy_percent=minimum,
        network_configuration=params.get("networkConfiguration"),
    )
    return {"service": _service(ecs, service)}


def delete_service(ecs: LocalEcs, params: Params) -> Response:
    service = ecs.services.get(ecs.clusters.get(params.get("cluster")), _require(params, "service"))
    service = ecs.services.delete(service, force=bool(params.get("force")))
    return {"service": _service(ecs, service)}


def list_services(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.get(params.get("cluster"))
    launch_type = params.get("launchType")
    arns = [s.arn for s in ecs.services.of_cluster(cluster) if not launch_type or s.launch_type == launch_type]
    return _paged("serviceArns", arns, params, 10)


def describe_services(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.clusters.find(params.get("cluster") or "default")
    if cluster is None:
        raise ClusterNotFoundException("Cluster not found.")
    refs = _require(params, "services")
    if len(refs) > 10:
        raise InvalidParameterException("Too many services. Maximum is 10.")
    found, failures = [], []
    for ref in refs:
        service = ecs.services.find(cluster, ref)
        if service is None:
            failures.append({"arn": ref if ref.startswith("arn:") else ecs.arns.service(cluster.name, ref), "reason": "MISSING"})
        else:
            found.append(_service(ecs, service))
    return {"services": found, "failures": failures}


OPERATIONS: dict[str, Callable[[LocalEcs, Params], Response]] = {
    "CreateCluster": create_cluster,
    "ListClusters": list_clusters,
    "DescribeClusters": describe_clusters,
    "ListContainerInstances": list_container_instances,
    "DescribeContainerInstances": describe_container_instances,
    "RegisterTaskDefinition": register_task_definition,
    "DeregisterTaskDefinition": deregister_task_definition,
    "DescribeTaskDefinition": describe_task_definition,
    "ListTaskDefinitions": list_task_definitions,
    "ListTaskDefinitionFamilies": list_task_definition_families,
    "RunTask": run_task,
    "StopTask": stop_task,
    "ListTasks": list_tasks,
    "DescribeTasks": describe_tasks,
    "CreateService": create_service,
    "UpdateService": update_service,
    "DeleteService": delete_service,
    "ListServices": list_services,
    "DescribeServices": describe_services,
}


def handle(ecs: LocalEcs, target: str, params: Params) -> Response:
    """Run the operation named by an ``X-Amz-Target`` header value."""
    operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
    handler = OPERATIONS.get(operation)
    if handler is None:
        raise UnsupportedOperation(f"Operation {target!r} is not supported by the local ECS.")
    return handler(ecs, params)
