"""The address of the container instance a bridge or host task runs on: EC2 instances through
ec2:DescribeInstances, ECS Anywhere (EXTERNAL) instances through SSM. Blocking I/O."""

from __future__ import annotations

from typing import Any, Iterable

import structlog

from controlplane.discovery.ecs_api import CountingClient, batches

log = structlog.get_logger()

DESCRIBE_CONTAINER_INSTANCES_BATCH = 100
SSM_INSTANCE_IDS_BATCH = 50


class InstanceAddresses:
    """Container instance ARN -> instance id (EC2 i-..., or SSM mi-... for ECS Anywhere) -> address.

    Addresses of known instances are kept (an instance keeps its private address for life); an
    unknown ARN, or a known one whose address is missing, is described when a task names it.
    """

    def __init__(self, ec2: Any, ssm: Any | None = None) -> None:
        self._ec2 = ec2
        self._ssm = ssm
        self._instance_ids: dict[str, str] = {}
        self._addresses: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._instance_ids)

    def address(self, container_instance_arn: str | None) -> str | None:
        if not container_instance_arn:
            return None
        instance_id = self._instance_ids.get(container_instance_arn)
        return self._addresses.get(instance_id) if instance_id else None

    def resolve(self, ecs: CountingClient, cluster: str, container_instance_arns: Iterable[str]) -> None:
        """Learn the addresses of the named container instances that are not known yet."""
        unknown = sorted(
            arn
            for arn in set(container_instance_arns)
            if arn not in self._instance_ids or self._instance_ids[arn] not in self._addresses
        )
        if not unknown:
            return
        for batch in batches(unknown, DESCRIBE_CONTAINER_INSTANCES_BATCH):
            response = ecs.call("DescribeContainerInstances", cluster=cluster, containerInstances=batch)
            for instance in response.get("containerInstances", ()):
                if instance.get("ec2InstanceId"):
                    self._instance_ids[instance["containerInstanceArn"]] = instance["ec2InstanceId"]
        missing = sorted({self._instance_ids[a] for a in unknown if a in self._instance_ids} - set(self._addresses))
        # ECS Anywhere: an external instance's "ec2InstanceId" is its SSM managed instance id
        # (mi-...); its address is the IPAddress SSM reports for it.
        managed = [iid for iid in missing if iid.startswith("mi-")]
        ec2_ids = [iid for iid in missing if not iid.startswith("mi-")]
        if ec2_ids:
            self._describe_ec2(ecs, ec2_ids)
        if managed and self._ssm is not None:
            self._describe_managed(ecs, managed)
        elif managed:
            log.warning("discovery.external_instances_need_ssm", cluster=cluster, instances=managed[:5])

    def _describe_ec2(self, ecs: CountingClient, instance_ids: list[str]) -> None:
        ecs.counter["ec2:DescribeInstances"] += 1
        paginator = self._ec2.get_paginator("describe_instances")
        for page in paginator.paginate(InstanceIds=instance_ids):
            for reservation in page.get("Reservations", ()):
                for instance in reservation.get("Instances", ()):
                    if instance.get("PrivateIpAddress"):
                        self._addresses[instance["InstanceId"]] = instance["PrivateIpAddress"]

    def _describe_managed(self, ecs: CountingClient, instance_ids: list[str]) -> None:
        ssm = CountingClient(self._ssm, ecs.counter, prefix="ssm:")
        for batch in batches(instance_ids, SSM_INSTANCE_IDS_BATCH):
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"Filters": [{"Key": "InstanceIds", "Values": batch}]}
                if token:
                    kwargs["NextToken"] = token
                response = ssm.call("DescribeInstanceInformation", **kwargs)
                for info in response.get("InstanceInformationList", ()):
                    if info.get("IPAddress"):
                        self._addresses[info["InstanceId"]] = info["IPAddress"]
                token = response.get("NextToken")
                if not token:
                    break
