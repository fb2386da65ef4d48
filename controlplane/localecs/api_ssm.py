"""SSM DescribeInstanceInformation: the address of ECS Anywhere (external) container instances.

ECS reports an external instance's SSM managed instance id (mi-...) as its ``ec2InstanceId``;
SSM reports that managed instance's ``IPAddress``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.errors import EcsError

TARGET_PREFIX = "AmazonSSM."


class InvalidInstanceId(EcsError):
    code = "InvalidInstanceId"


class InvalidFilterKey(EcsError):
    code = "InvalidFilterKey"


def describe_instance_information(ecs: LocalEcs, params: dict[str, Any]) -> dict[str, Any]:
    external = [i for i in ecs.clusters.instances() if i.external]
    wanted: set[str] | None = None
    for flt in params.get("Filters") or []:
        if flt.get("Key") in ("InstanceIds", "tag:ecs-cluster"):
            if flt.get("Key") == "InstanceIds":
                wanted = set(flt.get("Values") or []) | (wanted or set())
        else:
            raise InvalidFilterKey(f"Unsupported filter key {flt.get('Key')!r} in the local SSM.")
    for flt in params.get("InstanceInformationFilterList") or []:
        if flt.get("key") == "InstanceIds":
            wanted = set(flt.get("valueSet") or []) | (wanted or set())
    if wanted is not None:
        known = {i.ec2_instance_id for i in external}
        unknown = sorted(wanted - known)
        if unknown and not any(u.startswith("mi-") for u in unknown):
            raise InvalidInstanceId(f"Instance ids {unknown} are not valid.")
        external = [i for i in external if i.ec2_instance_id in wanted]
    external.sort(key=lambda i: i.ec2_instance_id)
    max_results = int(params.get("MaxResults") or 50)
    offset = int(json.loads(base64.b64decode(params["NextToken"]))["offset"]) if params.get("NextToken") else 0
    page = external[offset : offset + max_results]
    result: dict[str, Any] = {
        "InstanceInformationList": [
            {
                "InstanceId": i.ec2_instance_id,
                "PingStatus": "Online",
                "LastPingDateTime": i.registered_at,
                "AgentVersion": "3.3.0.0",
                "IsLatestVersion": True,
                "PlatformType": "Linux",
                "PlatformName": "Local",
                "PlatformVersion": "1",
                "ResourceType": "ManagedInstance",
                "RegistrationDate": i.registered_at,
                "Name": f"local-external-{i.id[:8]}",
                "ComputerName": f"local-external-{i.id[:8]}",
                "IPAddress": i.address,
            }
            for i in page
        ]
    }
    if offset + max_results < len(external):
        result["NextToken"] = base64.b64encode(json.dumps({"offset": offset + max_results}).encode()).decode()
    return result


def handle(ecs: LocalEcs, target: str, params: dict[str, Any]) -> dict[str, Any]:
    operation = target[len(TARGET_PREFIX):]
    if operation != "DescribeInstanceInformation":
        raise EcsError(f"Operation {target!r} is not supported by the local SSM.")
    return describe_instance_information(ecs, params)
