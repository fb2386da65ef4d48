"""Tasks are real processes: addresses, ports, lifecycle order, failures, health checks."""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

from .helpers import container, wait_for


def _describe(ecs: Any, cluster: str, arn: str) -> dict[str, Any]:
    return ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]


def _wait_status(ecs: Any, cluster: str, arn: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    return wait_for(
        lambda: (t := _describe(ecs, cluster, arn))["lastStatus"] == status and t,
        timeout=timeout,
        what=f"task {arn} {status}",
    )


def _read_id(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=2) as conn:
        return conn.recv(100).decode()


def _eni_address(task: dict[str, Any]) -> str:
    details = {d["name"]: d.get("value") for d in task["attachments"][0]["details"]}
    return str(details["privateIPv4Address"])


def test_awsvpc_tasks_get_distinct_addresses_and_listen_there(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="vpc", networkMode="awsvpc", containerDefinitions=[container(port=8080)])
    arns = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition="vpc", count=3)["tasks"]]
    tasks = [_wait_status(ecs, cluster, arn, "RUNNING") for arn in arns]
    addresses = [_eni_address(t) for t in tasks]
    assert len(set(addresses)) == 3
    for task, address in zip(tasks, addresses):
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.10.0.0/16")
        attachment = task["attachments"][0]
        assert attachment["type"] == "ElasticNetworkInterface"
        assert {d["name"] for d in attachment["details"]} >= {"subnetId", "networkInterfaceId", "macAddress", "privateIPv4Address"}
        assert task["containers"][0]["networkInterfaces"][0]["privateIpv4Address"] == address
        assert task["group"] == "family:vpc"
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        assert len(task_id) == 32 and task["taskArn"] == f"arn:aws:ecs:us-east-1:000000000000:task/{cluster}/{task_id}"
        # The same container port on every task: each listens on its own address.
        assert _read_id(address, 8080) == task_id


def test_bridge_task_gets_dynamic_host_port_on_its_instance(ecs: Any, ec2: Any, cluster: str) -> None:
    ecs.register_task_definition(family="br", networkMode="bridge", containerDefinitions=[container(port=8080)])
    arns = [t["taskArn"] for t in ecs.run_task(cluster=cluster, taskDefinition="br", count=2)["tasks"]]
    for arn in arns:
        task = _wait_status(ecs, cluster, arn, "RUNNING")
        binding = task["containers"][0]["networkBindings"][0]
        assert binding["containerPort"] == 8080 and binding["protocol"] == "tcp"
        assert 32768 <= binding["hostPort"] <= 60999
        instance = ecs.describe_container_instances(cluster=cluster, containerInstances=[task["containerInstanceArn"]])["containerInstances"][0]
        reservation = ec2.describe_instances(InstanceIds=[instance["ec2InstanceId"]])["Reservations"][0]
        address = reservation["Instances"][0]["PrivateIpAddress"]
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.20.0.0/16")
        assert _read_id(address, binding["hostPort"]) == arn.rsplit("/", 1)[-1]
    # Round-robin placement over the two instances.
    instances = {_describe(ecs, cluster, arn)["containerInstanceArn"] for arn in arns}
    assert len(instances) == 2


def test_lifecycle_transitions_in_order(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(
        family="life", networkMode="awsvpc",
        containerDefinitions=[container(env={"TERM_DELAY": "0.3"}, stopTimeout=3)],
    )
    arn = ecs.run_task(cluster=cluster, taskDefinition="life")["tasks"][0]["taskArn"]
    seen: list[tuple[str, str]] = []

    def record() -> dict[str, Any]:
        task = _describe(ecs, cluster, arn)
        state = (task["lastStatus"], task["desiredStatus"])
        if not seen or seen[-1] != state:
            seen.append(state)
        return task

    wait_for(lambda: record()["lastStatus"] == "RUNNING", what="RUNNING", interval=0.005)
    stopped = ecs.stop_task(cluster=cluster, task=arn, reason="draining test")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    final = wait_for(lambda: (t := record())["lastStatus"] == "STOPPED" and t, what="STOPPED", interval=0.005)

    # No load balancer: no DEACTIVATING, SIGTERM at once; awsvpc: DEPROVISIONING once the containers stopped.
    expected = [
        ("PROVISIONING", "RUNNING"),
        ("PENDING", "RUNNING"),
        ("RUNNING", "RUNNING"),
        ("RUNNING", "STOPPED"),
        ("STOPPING", "STOPPED"),
        ("DEPROVISIONING", "STOPPED"),
        ("STOPPED", "STOPPED"),
    ]
    # Polling may miss the short RUNNING/STOPPED and DEPROVISIONING states, never see others.
    assert [s for s in expected if s in seen] == seen
    assert ("STOPPING", "STOPPED") in seen
    assert final["stopCode"] == "UserInitiated" and final["stoppedReason"] == "draining test"
    assert final["stoppedAt"] >= final["stoppingAt"] >= final["startedAt"] >= final["createdAt"]
    assert final["containers"][0]["exitCode"] == 0
    # STOPPED tasks stay listable.
    assert arn in ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"]


def test_sigterm_ignored_means_sigkill_after_stop_timeout(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="stubborn", containerDefinitions=[container(env={"TERM_DELAY": "ignore"}, stopTimeout=1)])
    arn = ecs.run_task(cluster=cluster, taskDefinition="stubborn")["tasks"][0]["taskArn"]
    _wait_status(ecs, cluster, arn, "RUNNING")
    started = time.monotonic()
    ecs.stop_task(cluster=cluster, task=arn)
    final = _wait_status(ecs, cluster, arn, "STOPPED")
    assert time.monotonic() - started >= 1.0
    assert final["containers"][0]["exitCode"] == 137


def test_process_that_never_listens_fails_to_start(ecs: Any, cluster: str, server: Any) -> None:
    broken = container(port=8080)
    broken["command"] = [broken["command"][0], "-c", "import sys; print('boom'); sys.exit(2)"]
    ecs.register_task_definition(family="broken", containerDefinitions=[broken])
    arn = ecs.run_task(cluster=cluster, taskDefinition="broken")["tasks"][0]["taskArn"]
    final = _wait_status(ecs, cluster, arn, "STOPPED")
    assert final["stopCode"] == "TaskFailedToStart"
    assert "exited with code 2" in final["stoppedReason"]
    assert final["containers"][0]["exitCode"] == 2
    # The task's output is in its log file, named in the reason.
    log_path = final["stoppedReason"].split("logs: ")[1].rstrip(")")
    assert "boom" in open(log_path).read()


def test_health_check_turns_container_unhealthy(ecs_unvalidated: Any, cluster: str, recorder: Any) -> None:
    ecs = ecs_unvalidated
    ecs.register_task_definition(
        family="health",
        containerDefinitions=[
            container(name="bad", port=None, healthCheck={"command": ["CMD-SHELL", "exit 1"], "interval": 0.1, "retries": 2, "timeout": 2}),
            container(name="good", port=None, healthCheck={"command": ["CMD", "true"], "interval": 0.1, "retries": 2}),
        ],
    )
    arn = ecs.run_task(cluster=cluster, taskDefinition="health")["tasks"][0]["taskArn"]
    task = _wait_status(ecs, cluster, arn, "RUNNING")
    assert task["healthStatus"] == "UNKNOWN"
    task = wait_for(lambda: (t := _describe(ecs, cluster, arn))["healthStatus"] == "UNHEALTHY" and t, what="UNHEALTHY")
    health = {c["name"]: c["healthStatus"] for c in task["containers"]}
    assert health["bad"] == "UNHEALTHY"
    wait_for(lambda: {c["name"]: c["healthStatus"] for c in _describe(ecs, cluster, arn)["containers"]}["good"] == "HEALTHY", what="good HEALTHY")
    ecs.stop_task(cluster=cluster, task=arn)


def test_host_mode_task_binds_its_container_port_on_the_instance(ecs: Any, cluster: str) -> None:
    ecs.register_task_definition(family="host", networkMode="host", containerDefinitions=[container(port=18080)])
    arn = ecs.run_task(cluster=cluster, taskDefinition="host")["tasks"][0]["taskArn"]
    task = _wait_status(ecs, cluster, arn, "RUNNING")
    binding = task["containers"][0]["networkBindings"][0]
    assert binding["hostPort"] == binding["containerPort"] == 18080
    instance = ecs.describe_container_instances(cluster=cluster, containerInstances=[task["containerInstanceArn"]])["containerInstances"][0]
    assert instance["runningTasksCount"] == 1
    address = {"127.20.1.1", "127.20.2.1"}
    assert any(_can_read(a, 18080, arn) for a in address)
    assert task["attachments"] == []


def _can_read(address: str, port: int, arn: str) -> bool:
    try:
        return _read_id(address, port) == arn.rsplit("/", 1)[-1]
    except OSError:
        return False
