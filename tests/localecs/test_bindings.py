"""Bridge networkBindings as Docker reports them: one on 0.0.0.0 and one on :: per port mapping;
a dynamic port may get a different host port on each (moby#42375), and only IPv4 is served."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .conftest import LocalEcsFactory
from .helpers import container, wait_for


def _running(ecs: Any, arn: str) -> dict[str, Any]:
    return dict(wait_for(
        lambda: (t := ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])["lastStatus"] == "RUNNING" and t, what="RUNNING"
    ))


def _instance_address(ecs: Any, ec2: Any, task: dict[str, Any]) -> str:
    instance = ecs.describe_container_instances(cluster="c", containerInstances=[task["containerInstanceArn"]])["containerInstances"][0]
    return str(ec2.describe_instances(InstanceIds=[instance["ec2InstanceId"]])["Reservations"][0]["Instances"][0]["PrivateIpAddress"])


def _serves(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return bool(conn.recv(100))
    except OSError:
        return False


def test_dynamic_port_is_reported_on_ipv4_and_ipv6_with_distinct_host_ports(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server()
    ecs, ec2 = local_ecs.client(srv), local_ecs.client(srv, "ec2")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="f", networkMode="bridge", containerDefinitions=[container(port=8080)])
    task = _running(ecs, ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"])
    bindings = task["containers"][0]["networkBindings"]
    assert [(b["bindIP"], b["containerPort"], b["protocol"]) for b in bindings] == [("0.0.0.0", 8080, "tcp"), ("::", 8080, "tcp")]
    ipv4, ipv6 = bindings[0]["hostPort"], bindings[1]["hostPort"]
    assert ipv4 != ipv6 and all(32768 <= p <= 60999 for p in (ipv4, ipv6))
    address = _instance_address(ecs, ec2, task)
    # Only the IPv4 binding's port reaches the task: a client must choose by bindIP.
    assert _serves(address, ipv4)
    assert not _serves(address, ipv6)


def test_static_host_port_is_the_same_on_both_bindings(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server()
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    static = container(port=8080)
    static["portMappings"] = [{"containerPort": 8080, "hostPort": 28080}]
    ecs.register_task_definition(family="f", networkMode="bridge", containerDefinitions=[static])
    task = _running(ecs, ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"])
    assert [(b["bindIP"], b["hostPort"]) for b in task["containers"][0]["networkBindings"]] == [("0.0.0.0", 28080), ("::", 28080)]


@pytest.mark.parametrize(("order", "expected"), [("before", ["::", "0.0.0.0"]), ("none", ["0.0.0.0"])])
def test_ipv6_binding_order_is_an_option(local_ecs: LocalEcsFactory, order: str, expected: list[str]) -> None:
    srv = local_ecs.server(ipv6_bindings=order)
    ecs, ec2 = local_ecs.client(srv), local_ecs.client(srv, "ec2")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="f", networkMode="bridge", containerDefinitions=[container(port=8080)])
    task = _running(ecs, ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"])
    bindings = task["containers"][0]["networkBindings"]
    assert [b["bindIP"] for b in bindings] == expected
    ipv4 = next(b["hostPort"] for b in bindings if b["bindIP"] == "0.0.0.0")
    assert _serves(_instance_address(ecs, ec2, task), ipv4)


def test_host_task_has_one_binding_per_port(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server(processes=False)
    ecs = local_ecs.client(srv)
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(
        family="h", networkMode="host",
        containerDefinitions=[{"name": "app", "image": "x", "portMappings": [{"containerPort": 18080}], "dockerLabels": {"local-ecs.address-only": "true"}}],
    )
    task = _running(ecs, ecs.run_task(cluster="c", taskDefinition="h")["tasks"][0]["taskArn"])
    assert [(b["bindIP"], b["hostPort"]) for b in task["containers"][0]["networkBindings"]] == [("0.0.0.0", 18080)]
