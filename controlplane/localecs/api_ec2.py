"""EC2 DescribeInstances (query protocol, XML) for the container instances of every cluster."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape

from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.model import ContainerInstance

EC2_NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"


class Ec2Error(Exception):
    """An EC2 error (``<Response><Errors><Error>``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_xml(code: str, message: str) -> str:
    """The XML body EC2 returns with HTTP 400."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"</Error></Errors><RequestID>{secrets.token_hex(16)}</RequestID></Response>"
    )


def _indexed(params: Mapping[str, Sequence[str]], prefix: str) -> list[str]:
    """Values of ``prefix.1``, ``prefix.2``... in order."""
    values = []
    index = 1
    while f"{prefix}.{index}" in params:
        values.append(params[f"{prefix}.{index}"][0])
        index += 1
    return values


def _filters(params: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    index = 1
    while f"Filter.{index}.Name" in params:
        name = params[f"Filter.{index}.Name"][0]
        filters[name] = _indexed(params, f"Filter.{index}.Value")
        index += 1
    return filters


def _instance_xml(instance: ContainerInstance) -> str:
    launch = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(instance.registered_at))
    dns = "ip-" + instance.address.replace(".", "-") + ".ec2.internal"
    return (
        "<item>"
        f"<instanceId>{instance.ec2_instance_id}</instanceId>"
        "<imageId>ami-00000000000000000</imageId>"
        "<instanceState><code>16</code><name>running</name></instanceState>"
        f"<privateDnsName>{dns}</privateDnsName>"
        "<dnsName></dnsName>"
        "<instanceType>t3.medium</instanceType>"
        f"<launchTime>{launch}</launchTime>"
        f"<placement><availabilityZone>{instance.availability_zone}</availabilityZone>"
        "<tenancy>default</tenancy></placement>"
        f"<privateIpAddress>{instance.address}</privateIpAddress>"
        "<subnetId>subnet-0local00000000000</subnetId>"
        "<vpcId>vpc-0local00000000000</vpcId>"
        "<architecture>x86_64</architecture>"
        "<tagSet><item><key>ecs-cluster</key>"
        f"<value>{escape(instance.cluster)}</value></item></tagSet>"
        "</item>"
    )


def describe_instances(ecs: LocalEcs, params: Mapping[str, Sequence[str]]) -> str:
    """The DescribeInstances XML for the requested instance ids (all instances if none)."""
    wanted = _indexed(params, "InstanceId")
    filters = _filters(params)
    # External (ECS Anywhere) instances are SSM managed instances, unknown to EC2.
    instances = [i for i in ecs.clusters.instances() if not i.external]
    by_id = {i.ec2_instance_id: i for i in instances}
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise Ec2Error(
            "InvalidInstanceID.NotFound",
            f"The instance IDs '{', '.join(missing)}' do not exist",
        )
    selected = [by_id[i] for i in wanted] if wanted else instances
    if "instance-id" in filters:
        selected = [i for i in selected if i.ec2_instance_id in filters["instance-id"]]
    if "private-ip-address" in filters:
        selected = [i for i in selected if i.address in filters["private-ip-address"]]
    reservations = "".join(
        "<item>"
        f"<reservationId>r-{instance.ec2_instance_id[2:]}</reservationId>"
        "<ownerId>000000000000</ownerId>"
        "<groupSet/>"
        f"<instancesSet>{_instance_xml(instance)}</instancesSet>"
        "</item>"
        for instance in selected
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<DescribeInstancesResponse xmlns="{EC2_NAMESPACE}">'
        f"<requestId>{secrets.token_hex(16)}</requestId>"
        f"<reservationSet>{reservations}</reservationSet>"
        "</DescribeInstancesResponse>"
    )


def handle(ecs: LocalEcs, params: Mapping[str, Sequence[str]]) -> str:
    """Run the EC2 action in ``params``; only DescribeInstances is supported."""
    action = params.get("Action", [""])[0]
    if action != "DescribeInstances":
        raise Ec2Error("InvalidAction", f"The action {action} is not valid for this web service.")
    return describe_instances(ecs, params)
