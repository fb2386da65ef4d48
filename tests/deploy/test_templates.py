"""The CloudFormation templates in deploy/: their task definitions' labels pass the product's own
parser, the stand-alone IAM policy is the template's, and the linters `make lint` runs can fail."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from cfnlint.decode import decode

from controlplane.discovery.state import ClusterState, ContainerDefinition, ContainerEndpoint, PortMapping, Task, TaskDefinition
from controlplane.model.build import build_mesh

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
TEMPLATES = sorted((DEPLOY / "cloudformation").glob("*.yaml"))
BIN = Path(sys.executable).parent


def load_iam_policy_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("iam_policy", DEPLOY / "iam_policy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


iam_policy = load_iam_policy_tool()


def template(path: Path) -> dict[str, Any]:
    document, errors = decode(str(path))
    assert not errors and document is not None, errors
    return document  # type: ignore[no-any-return]


def resolve(value: Any, parameters: dict[str, Any]) -> str:
    """A label value as ECS would get it: a Ref to a parameter becomes the parameter's default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(parameters[value["Ref"]]["Default"])
    assert isinstance(value, str), f"unexpected label value {value!r}"
    return value


def task_definitions() -> list[tuple[str, TaskDefinition]]:
    """Every ECS task definition in every template, as discovery would describe it."""
    found = []
    for path in TEMPLATES:
        document = template(path)
        parameters = document.get("Parameters", {})
        for logical_id, resource in document["Resources"].items():
            if resource["Type"] != "AWS::ECS::TaskDefinition":
                continue
            properties = resource["Properties"]
            containers = tuple(
                ContainerDefinition(
                    name=c["Name"],
                    labels=MappingProxyType({k: resolve(v, parameters) for k, v in c.get("DockerLabels", {}).items()}),
                    port_mappings=tuple(PortMapping(container_port=int(p["ContainerPort"])) for p in c.get("PortMappings", ())),
                )
                for c in properties["ContainerDefinitions"]
            )
            family = f"{path.stem}-{logical_id}".lower()
            arn = f"arn:aws:ecs:us-east-1:111122223333:task-definition/{family}:1"
            found.append((f"{path.name}:{logical_id}", TaskDefinition(arn, family, 1, properties["NetworkMode"], containers)))
    return found


def running_task(index: int, task_definition: TaskDefinition) -> Task:
    """One RUNNING, healthy task of the task definition, each container port on its own loopback address."""
    endpoints = tuple(
        ContainerEndpoint(c.name, p.container_port, f"127.0.9.{index + 1}", p.container_port)
        for c in task_definition.containers
        for p in c.port_mappings
    )
    return Task(
        arn=f"arn:aws:ecs:us-east-1:111122223333:task/mesh/{index:032x}",
        cluster="mesh",
        task_definition_arn=task_definition.arn,
        group=f"service:{task_definition.family}",
        last_status="RUNNING",
        desired_status="RUNNING",
        health_status="HEALTHY",
        availability_zone="us-east-1a",
        container_health=MappingProxyType({c.name: "HEALTHY" for c in task_definition.containers}),
        endpoints=endpoints,
    )


def test_every_template_task_definition_declares_labels_the_product_accepts() -> None:
    found = task_definitions()
    state = ClusterState(
        cluster="mesh",
        tasks=tuple(running_task(i, td) for i, (_, td) in enumerate(found)),
        task_definitions={td.arn: td for _, td in found},
        synced_at=0.0,
    )

    mesh = build_mesh([state])

    assert [(p.severity, p.message) for p in mesh.problems] == []
    # The sample services really are in the mesh, with endpoints; the templates declare them all together.
    assert {s.name for s in mesh.services} == {"routeguide", "features"}
    assert all(len(s.endpoints) == 1 for s in mesh.services)
    features = mesh.service("features")
    assert features is not None and features.upstreams == ("routeguide",)


def test_a_label_the_product_rejects_would_fail_the_check() -> None:
    (name, good), *_ = [(n, td) for n, td in task_definitions() if "RouteGuide" in n]
    app = good.containers[0]
    broken = TaskDefinition(
        good.arn, good.family, 1, good.network_mode,
        (ContainerDefinition(app.name, MappingProxyType({**app.labels, "xds.port": "http"}), app.port_mappings),),
    )  # fmt: skip
    state = ClusterState("mesh", (running_task(0, broken),), {broken.arn: broken}, 0.0)

    problems = build_mesh([state]).problems

    assert [p.label for p in problems] == ["xds.port"]


def test_the_sidecar_starts_after_envoy_is_healthy_and_envoy_has_a_stop_timeout() -> None:
    containers = {
        c["Name"]: c
        for c in template(DEPLOY / "cloudformation" / "sidecar-service.yaml")["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    }
    assert containers["app"]["DependsOn"] == [{"ContainerName": "envoy", "Condition": "HEALTHY"}]
    assert "HealthCheck" in containers["envoy"]
    assert containers["envoy"]["StopTimeout"] > containers["app"]["StopTimeout"]


def test_the_stand_alone_iam_policy_is_the_template_policy() -> None:
    assert json.loads((DEPLOY / "iam-policy.json").read_text()) == iam_policy.template_policy()


def test_the_iam_policy_has_no_linter_findings_and_grants_only_what_the_product_calls() -> None:
    policy = iam_policy.template_policy(names=iam_policy.EXAMPLE)
    actions = set()
    for statement in policy["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)

    assert iam_policy.findings(policy) == []
    assert actions == {
        "ecs:ListTasks", "ecs:DescribeTasks", "ecs:DescribeContainerInstances", "ecs:DescribeTaskDefinition",
        "ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "sqs:ReceiveMessage", "sqs:DeleteMessage",
    }  # fmt: skip
    queue = next(s for s in policy["Statement"] if "sqs:ReceiveMessage" in s["Action"])
    assert queue["Resource"].startswith("arn:aws:sqs:us-east-1:111122223333:")


def test_the_iam_linter_catches_what_the_old_policy_got_wrong() -> None:
    old = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["ecs:ListTasks", "ecs:DescribeTasks"], "Resource": "*"},
            {"Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessageBatch"], "Resource": "arn:aws:sqs:*:*:q"},
        ],
    }
    found = "\n".join(iam_policy.findings(old))
    assert "Unknown action sqs:DeleteMessageBatch" in found
    assert "RESOURCE_STAR" in found  # ListTasks is accepted on "*" only alone, with its condition


@pytest.mark.parametrize(
    "command,bad_input,suffix",
    [
        ([str(BIN / "cfn-lint")], "AWSTemplateFormatVersion: '2010-09-09'\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      Nope: 1\n", ".yaml"),
        ([str(BIN / "hadolint")], "FROM python\nRUN apt-get install curl\n", ".Dockerfile"),
    ],
)
def test_the_lint_tools_fail_on_bad_input(command: list[str], bad_input: str, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(bad_input)
    assert subprocess.run([*command, str(path)], capture_output=True, timeout=120).returncode != 0

