"""ECS response shapes: model objects rendered as DescribeTasks, DescribeServices... return them.

Pure functions of the objects they are given; the API layer gathers those under the lock.
"""

from __future__ import annotations

import math
from typing import Any

from controlplane.localecs import model
from controlplane.localecs.model import Cluster, Container, ContainerInstance, Service, Task, TaskDefinition
from controlplane.localecs.shapes import prune_ecs

AGENT_VERSION = "1.80.0"

Response = dict[str, Any]


def counts(tasks: list[Task]) -> tuple[int, int]:
    """(running, pending) among tasks whose desiredStatus is RUNNING, as AWS counts them."""
    running = sum(1 for t in tasks if t.last_status == model.RUNNING and t.desired_status == model.RUNNING)
    pending = sum(
        1 for t in tasks
        if t.last_status in (model.PROVISIONING, model.PENDING, model.ACTIVATING) and t.desired_status == model.RUNNING
    )
    return running, pending




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


def render_container_instance(instance: ContainerInstance, tasks: list[Task]) -> Response:
    """A container instance as DescribeContainerInstances returns it; ``tasks``: its cluster's."""
    running, pending = counts([t for t in tasks if t.container_instance is instance])
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


def render_cluster(cluster: Cluster, tasks: list[Task], services: list[Service], include: list[str]) -> Response:
    """A cluster as DescribeClusters returns it, with its ``tasks`` and ``services``."""
    running, pending = counts(tasks)
    result: Response = {
        "clusterArn": cluster.arn,
        "clusterName": cluster.name,
        "status": cluster.status,
        "registeredContainerInstancesCount": len(cluster.instances),
        "runningTasksCount": running,
        "pendingTasksCount": pending,
        "activeServicesCount": len([s for s in services if s.status == "ACTIVE"]),
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


def render_service(service: Service, tasks: list[Task]) -> Response:
    """A service as DescribeServices returns it, with its ``tasks``."""
    running, pending = counts(tasks)
    deployments = []
    for deployment in service.deployments:
        mine = [t for t in tasks if t.deployment_id == deployment.id]
        d_running, d_pending = counts(mine)
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
        "clusterArn": service.arn.split(":service/")[0] + ":cluster/" + service.cluster,
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
