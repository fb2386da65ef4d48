"""ECS JSON API: one function per operation, from request parameters to AWS response shapes."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.errors import (
    ClusterNotFoundException,
    InvalidParameterException,
    ServiceNotFoundException,
    UnsupportedOperation,
)
from controlplane.localecs.model import Cluster, Container, ContainerInstance, Service, Task, TaskDefinition
from controlplane.localecs.shapes import prune_ecs

TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
AGENT_VERSION = "1.80.0"

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


# --- rendering --------------------------------------------------------------------------


def _integral_health_check(container: dict[str, Any]) -> dict[str, Any]:
    """The container with fractional health check seconds rounded up for the response.

    The local ECS honours fractional ``interval``/``timeout``/``startPeriod`` (fast tests),
    but botocore's output shape says integer.
    """
    check = container.get("healthCheck")
    if not isinstance(check, dict):
        return container
    rounded = {
        k: (math.ceil(v) if isinstance(v, float) else v) for k, v in check.items()
    }
    return {**container, "healthCheck": rounded}


def render_task_definition(definition: TaskDefinition) -> Response:
    """A task definition as DescribeTaskDefinition returns it."""
    body = dict(definition.body)
    body["containerDefinitions"] = [_integral_health_check(c) for c in definition.container_definitions]
    body.update(
        {
            "taskDefinitionArn": definition.arn,
            "family": definition.family,
            "revision": definition.revision,
            "status": definition.status,
            "registeredAt": definition.registered_at,
            "registeredBy": "arn:aws:iam::000000000000:root",
            "volumes": body.get("volumes", []),
            "placementConstraints": body.get("placementConstraints", []),
            "requiresAttributes": [],
            "compatibilities": ["EC2", "FARGATE"] if definition.network_mode == "awsvpc" else ["EC2"],
        }
    )
    if definition.deregistered_at is not None:
        body["deregisteredAt"] = definition.deregistered_at
    return prune_ecs(body, "TaskDefinition")


def _timestamps(task: Task) -> Response:
    fields = {
        "createdAt": task.created_at,
        "pullStartedAt": task.pull_started_at,
        "pullStoppedAt": task.pull_stopped_at,
        "startedAt": task.started_at,
        "connectivityAt": task.pull_started_at,
        "stoppingAt": task.stopping_at,
        "executionStoppedAt": task.execution_stopped_at,
        "stoppedAt": task.stopped_at,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _render_container(task: Task, container: Container, definition: dict[str, Any]) -> Response:
    result: Response = {
        "containerArn": container.arn,
        "taskArn": task.arn,
        "name": container.name,
        "image": container.image,
        "lastStatus": container.last_status,
        "healthStatus": container.health_status,
        "cpu": str(definition.get("cpu", 0)),
        "networkBindings": [],
        "networkInterfaces": [],
    }
    if definition.get("memory") is not None:
        result["memory"] = str(definition["memory"])
    if definition.get("memoryReservation") is not None:
        result["memoryReservation"] = str(definition["memoryReservation"])
    if container.runtime_id:
        result["runtimeId"] = container.runtime_id
        if task.network_mode in ("bridge", "host"):
            result["networkBindings"] = [
                {
                    # AWS reports the wildcard bind address (0.0.0.0 or ::); the reachable
                    # address is the container instance's private IP.
                    "bindIP": b.bind_ip,
                    "containerPort": b.container_port,
                    "hostPort": b.host_port,
                    "protocol": b.protocol,
                }
                for b in container.bindings
            ]
    if task.network_mode == "awsvpc" and task.attachment_status != "PRECREATED":
        result["networkInterfaces"] = [
            {"attachmentId": task.attachment_id, "privateIpv4Address": task.host_address}
        ]
    if container.exit_code is not None:
        result["exitCode"] = container.exit_code
    if container.reason:
        result["reason"] = container.reason
    return result


def render_task(task: Task) -> Response:
    """A task as DescribeTasks returns it."""
    definitions = {c["name"]: c for c in task.task_definition.container_definitions}
    body = task.task_definition.body
    result: Response = {
        "taskArn": task.arn,
        "clusterArn": task.arn.split(":task/")[0] + ":cluster/" + task.cluster,
        "taskDefinitionArn": task.task_definition.arn,
        "group": task.group,
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "launchType": task.launch_type,
        "availabilityZone": task.availability_zone,
        "connectivity": "CONNECTED",
        "healthStatus": task.health_status,
        "version": task.version,
        "enableExecuteCommand": False,
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "tags": list(task.tags),
        "overrides": {
            "containerOverrides": task.overrides.get("containerOverrides")
            or [{"name": c.name} for c in task.containers],
            "inferenceAcceleratorOverrides": [],
        },
        "containers": [_render_container(task, c, definitions.get(c.name, {})) for c in task.containers],
        "attachments": [],
        **_timestamps(task),
    }
    if body.get("cpu") is not None:
        result["cpu"] = str(body["cpu"])
    if body.get("memory") is not None:
        result["memory"] = str(body["memory"])
    if task.started_by:
        result["startedBy"] = task.started_by
    if task.container_instance is not None:
        result["containerInstanceArn"] = task.container_instance.arn
    if task.launch_type == "FARGATE":
        result["platformVersion"] = "1.4.0"
        result["platformFamily"] = "Linux"
    if task.stop_code:
        result["stopCode"] = task.stop_code
    if task.stopped_reason:
        result["stoppedReason"] = task.stopped_reason
    if task.network_mode == "awsvpc":
        details = [{"name": "subnetId", "value": task.subnet_id}]
        if task.attachment_status != "PRECREATED":
            details += [
                {"name": "networkInterfaceId", "value": task.eni_id},
                {"name": "macAddress", "value": task.mac_address},
                {"name": "privateDnsName", "value": "ip-" + task.host_address.replace(".", "-") + ".ec2.internal"},
                {"name": "privateIPv4Address", "value": task.host_address},
            ]
        result["attachments"] = [
            {
                "id": task.attachment_id,
                "type": "ElasticNetworkInterface",
                "status": task.attachment_status,
                "details": details,
            }
        ]
    return result


def render_container_instance(ecs: LocalEcs, instance: ContainerInstance) -> Response:
    """A container instance as DescribeContainerInstances returns it."""
    cluster = ecs.cluster(instance.cluster)
    on_instance = [t for t in ecs.tasks(cluster) if t.container_instance is instance]
    running, pending = ecs.counts(on_instance)
    resources = [
        {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
        {"name": "MEMORY", "type": "INTEGER", "integerValue": 3904},
        {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
        {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []},
    ]
    return {
        "containerInstanceArn": instance.arn,
        "ec2InstanceId": instance.ec2_instance_id,
        "version": 1,
        "versionInfo": {"agentVersion": AGENT_VERSION, "agentHash": "local", "dockerVersion": "DockerVersion: local"},
        "remainingResources": resources,
        "registeredResources": resources,
        "status": "ACTIVE",
        "agentConnected": True,
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "attributes": [
            {"name": "ecs.availability-zone", "value": instance.availability_zone},
            {"name": "ecs.instance-type", "value": "t3.medium"},
            {"name": "ecs.os-type", "value": "linux"},
            {"name": "ecs.cpu-architecture", "value": "x86_64"},
        ],
        "registeredAt": instance.registered_at,
        "attachments": [],
        "tags": [],
    }


def render_cluster(ecs: LocalEcs, cluster: Cluster, include: list[str]) -> Response:
    """A cluster as DescribeClusters returns it."""
    running, pending = ecs.counts(ecs.tasks(cluster))
    result: Response = {
        "clusterArn": cluster.arn,
        "clusterName": cluster.name,
        "status": cluster.status,
        "registeredContainerInstancesCount": len(cluster.instances),
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": len([s for s in ecs.services(cluster) if s.status == "ACTIVE"]),
        "statistics": [],
        "tags": [],
        "settings": [],
        "capacityProviders": [],
        "defaultCapacityProviderStrategy": [],
    }
    if "TAGS" in include:
        result["tags"] = list(cluster.tags)
    if "SETTINGS" in include:
        result["settings"] = [{"name": "containerInsights", "value": "disabled"}]
    return result


def render_service(ecs: LocalEcs, service: Service) -> Response:
    """A service as DescribeServices returns it."""
    tasks = ecs.service_tasks(service)
    running, pending = ecs.counts(tasks)
    deployments = []
    for deployment in service.deployments:
        mine = [t for t in tasks if t.deployment_id == deployment.id]
        d_running, d_pending = ecs.counts(mine)
        entry: Response = {
            "id": deployment.id,
            "status": deployment.status,
            "taskDefinition": deployment.task_definition.arn,
            "desiredCount": service.desired_count if deployment.status == "PRIMARY" else 0,
            "pendingCount": d_pending,
            "runningCount": d_running,
            "failedTasks": deployment.failed_tasks,
            "createdAt": deployment.created_at,
            "updatedAt": deployment.updated_at,
            "launchType": service.launch_type,
            "rolloutState": deployment.rollout_state,
            "rolloutStateReason": deployment.rollout_state_reason,
        }
        if service.network_configuration:
            entry["networkConfiguration"] = service.network_configuration
        if service.launch_type == "FARGATE":
            entry["platformVersion"] = "1.4.0"
        deployments.append(entry)
    result: Response = {
        "serviceArn": service.arn,
        "serviceName": service.name,
        "clusterArn": ecs.arns.cluster(service.cluster),
        "loadBalancers": list(service.load_balancers),
        "serviceRegistries": [],
        "status": service.status,
        "desiredCount": service.desired_count,
        "runningCount": running,
        "pendingCount": pending,
        "launchType": service.launch_type,
        "taskDefinition": service.task_definition.arn,
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            "maximumPercent": service.maximum_percent,
            "minimumHealthyPercent": service.minimum_healthy_percent,
        },
        "deployments": deployments,
        "events": [{"id": e.id, "createdAt": e.created_at, "message": e.message} for e in service.events],
        "createdAt": service.created_at,
        "placementConstraints": [],
        "placementStrategy": [],
        "schedulingStrategy": "REPLICA",
        "deploymentController": {"type": "ECS"},
        "createdBy": "arn:aws:iam::000000000000:root",
        "enableECSManagedTags": False,
        "propagateTags": "NONE",
        "enableExecuteCommand": False,
    }
    if service.launch_type == "FARGATE":
        result["platformVersion"] = "LATEST"
        result["platformFamily"] = "Linux"
    if service.network_configuration:
        result["networkConfiguration"] = prune_ecs(service.network_configuration, "NetworkConfiguration")
    if service.health_check_grace_period_seconds is not None:
        result["healthCheckGracePeriodSeconds"] = service.health_check_grace_period_seconds
    return result


# --- operations ---------------------------------------------------------------------------


def create_cluster(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.create_cluster(params.get("clusterName") or "default", tags=params.get("tags"))
    return {"cluster": render_cluster(ecs, cluster, ["TAGS"])}


def list_clusters(ecs: LocalEcs, params: Params) -> Response:
    return _paged("clusterArns", [c.arn for c in ecs.clusters()], params, 100)


def describe_clusters(ecs: LocalEcs, params: Params) -> Response:
    clusters, failures = [], []
    for ref in params.get("clusters") or ["default"]:
        cluster = ecs.find_cluster(ref)
        if cluster is None:
            failures.append({"arn": ref if ref.startswith("arn:") else ecs.arns.cluster(ref), "reason": "MISSING"})
        else:
            clusters.append(render_cluster(ecs, cluster, params.get("include") or []))
    return {"clusters": clusters, "failures": failures}


def list_container_instances(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.cluster(params.get("cluster"))
    return _paged("containerInstanceArns", [i.arn for i in cluster.instances], params, 100)


def describe_container_instances(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.cluster(params.get("cluster"))
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
            found.append(render_container_instance(ecs, instance))
    return {"containerInstances": found, "failures": failures}


def register_task_definition(ecs: LocalEcs, params: Params) -> Response:
    body = {k: v for k, v in params.items() if k != "tags"}
    definition = ecs.register_task_definition(body, tags=params.get("tags"))
    return {"taskDefinition": render_task_definition(definition), "tags": list(definition.tags)}


def deregister_task_definition(ecs: LocalEcs, params: Params) -> Response:
    definition = ecs.deregister_task_definition(_require(params, "taskDefinition"))
    return {"taskDefinition": render_task_definition(definition)}


def describe_task_definition(ecs: LocalEcs, params: Params) -> Response:
    definition = ecs.task_definition(_require(params, "taskDefinition"))
    response: Response = {"taskDefinition": render_task_definition(definition)}
    if "TAGS" in (params.get("include") or []):
        response["tags"] = list(definition.tags)
    return response


def list_task_definitions(ecs: LocalEcs, params: Params) -> Response:
    status = params.get("status") or "ACTIVE"
    prefix = params.get("familyPrefix")
    arns = [
        d.arn
        for d in ecs.all_task_definitions()
        if d.status == status and (not prefix or d.family.startswith(prefix))
    ]
    if params.get("sort") == "DESC":
        arns.reverse()
    return _paged("taskDefinitionArns", arns, params, 100)


def list_task_definition_families(ecs: LocalEcs, params: Params) -> Response:
    prefix = params.get("familyPrefix")
    families = sorted({d.family for d in ecs.all_task_definitions() if not prefix or d.family.startswith(prefix)})
    return _paged("families", families, params, 100)


def run_task(ecs: LocalEcs, params: Params) -> Response:
    tasks = ecs.run_task(
        params.get("cluster"),
        _require(params, "taskDefinition"),
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
    task = ecs.stop_task(params.get("cluster"), _require(params, "task"), params.get("reason"))
    return {"task": render_task(task)}


def list_tasks(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.cluster(params.get("cluster"))
    desired = params.get("desiredStatus") or "RUNNING"
    if desired not in ("RUNNING", "PENDING", "STOPPED"):
        raise InvalidParameterException("desiredStatus must be one of RUNNING, PENDING, STOPPED.")
    service_name = params.get("serviceName")
    if service_name and ecs.find_service(cluster, service_name) is None:
        raise ServiceNotFoundException("Service not found.")
    family = params.get("family")
    started_by = params.get("startedBy")
    instance = params.get("containerInstance")
    launch_type = params.get("launchType")
    tasks = sorted(ecs.tasks(cluster), key=lambda t: (t.created_at, t.arn))
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
    cluster = ecs.cluster(params.get("cluster"))
    refs = _require(params, "tasks")
    if len(refs) > 100:
        raise InvalidParameterException("Tasks cannot be longer than 100.")
    found, failures = [], []
    for ref in refs:
        task = ecs.find_task(cluster, ref)
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
    service = ecs.create_service(
        params.get("cluster"),
        _require(params, "serviceName"),
        _require(params, "taskDefinition"),
        desired_count=int(params.get("desiredCount") or 0),
        launch_type=params.get("launchType"),
        network_configuration=params.get("networkConfiguration"),
        maximum_percent=maximum,
        minimum_healthy_percent=minimum,
        health_check_grace_period_seconds=params.get("healthCheckGracePeriodSeconds"),
        tags=params.get("tags"),
        load_balancers=params.get("loadBalancers"),
    )
    return {"service": render_service(ecs, service)}


def update_service(ecs: LocalEcs, params: Params) -> Response:
    maximum, minimum = _deployment_configuration(params)
    service = ecs.update_service(
        params.get("cluster"),
        _require(params, "service"),
        desired_count=params.get("desiredCount"),
        task_definition_ref=params.get("taskDefinition"),
        force_new_deployment=bool(params.get("forceNewDeployment")),
        maximum_percent=maximum,
        minimum_healthy_percent=minimum,
        network_configuration=params.get("networkConfiguration"),
    )
    return {"service": render_service(ecs, service)}


def delete_service(ecs: LocalEcs, params: Params) -> Response:
    service = ecs.delete_service(params.get("cluster"), _require(params, "service"), force=bool(params.get("force")))
    return {"service": render_service(ecs, service)}


def list_services(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.cluster(params.get("cluster"))
    launch_type = params.get("launchType")
    arns = [s.arn for s in ecs.services(cluster) if not launch_type or s.launch_type == launch_type]
    return _paged("serviceArns", arns, params, 10)


def describe_services(ecs: LocalEcs, params: Params) -> Response:
    cluster = ecs.find_cluster(params.get("cluster") or "default")
    if cluster is None:
        raise ClusterNotFoundException("Cluster not found.")
    refs = _require(params, "services")
    if len(refs) > 10:
        raise InvalidParameterException("Too many services. Maximum is 10.")
    found, failures = [], []
    for ref in refs:
        service = ecs.find_service(cluster, ref)
        if service is None:
            failures.append({"arn": ref if ref.startswith("arn:") else ecs.arns.service(cluster.name, ref), "reason": "MISSING"})
        else:
            found.append(render_service(ecs, service))
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
