"""Clusters and the container instances registered to them (the EC2 view comes from here too)."""

from __future__ import annotations

import threading

import structlog

from controlplane.localecs import model
from controlplane.localecs.addresses import InstanceAddressPool
from controlplane.localecs.errors import ClusterNotFoundException
from controlplane.localecs.model import Arns, Cluster, ContainerInstance


def name_from_ref(ref: str, kind: str) -> str:
    """``name`` from either a name or an ARN ``...:kind/name`` / ``...:kind/cluster/name``."""
    if ref.startswith("arn:"):
        resource = ref.split(":", 5)[-1]
        if resource.startswith(kind + "/"):
            return resource.split("/")[-1]
    return ref


def default_zones(region: str) -> tuple[str, ...]:
    """Three availability zones of ``region``: the local ECS's default."""
    return tuple(f"{region}{letter}" for letter in "abc")


class Clusters:
    """Every cluster by name; CreateCluster registers its EC2 (and ECS Anywhere) instances."""

    def __init__(
        self,
        lock: threading.RLock,
        arns: Arns,
        instance_addresses: InstanceAddressPool,
        *,
        instances_per_cluster: int,
        external_instances_per_cluster: int,
        zones: tuple[str, ...],
    ) -> None:
        self._lock = lock
        self._arns = arns
        self._instance_addresses = instance_addresses
        self._instances_per_cluster = instances_per_cluster
        self._external_instances_per_cluster = external_instances_per_cluster
        # Container instances take the zones in turn (instance i is in zone i mod their count).
        self._zones = zones
        self._clusters: dict[str, Cluster] = {}
        self._log = structlog.get_logger()

    def create(self, name: str = "default", tags: list[dict[str, str]] | None = None) -> Cluster:
        """Create a cluster (idempotent, as in AWS) with its container instances."""
        with self._lock:
            existing = self._clusters.get(name)
            if existing is not None:
                return existing
            cluster = Cluster(name=name, arn=self._arns.cluster(name), tags=list(tags or []))
            # EC2 instances first, then ECS Anywhere (EXTERNAL) ones, whose id is an SSM managed instance id.
            kinds = [(False, index) for index in range(self._instances_per_cluster)]
            kinds += [(True, index) for index in range(self._external_instances_per_cluster)]
            for external, index in kinds:
                instance_id = model.new_task_id()
                cluster.instances.append(
                    ContainerInstance(
                        arn=self._arns.container_instance(name, instance_id),
                        id=instance_id,
                        cluster=name,
                        ec2_instance_id=model.new_managed_instance_id() if external else model.new_instance_id(),
                        address=self._instance_addresses.acquire(),
                        availability_zone=self._zones[index % len(self._zones)],
                        external=external,
                    )
                )
            self._clusters[name] = cluster
        self._log.info("local_ecs.cluster_created", cluster=name, instances=[i.address for i in cluster.instances])
        return cluster

    def get(self, ref: str | None) -> Cluster:
        """The cluster named by ``ref`` (name or ARN; None means ``default``)."""
        cluster = self.find(ref or "default")
        if cluster is None:
            raise ClusterNotFoundException("Cluster not found.")
        return cluster

    def find(self, ref: str) -> Cluster | None:
        """The cluster named by ``ref``, or None."""
        with self._lock:
            return self._clusters.get(name_from_ref(ref, "cluster"))

    def all(self) -> list[Cluster]:
        """All clusters, oldest first."""
        with self._lock:
            return list(self._clusters.values())

    def instances(self) -> list[ContainerInstance]:
        """Every container instance of every cluster (the EC2 and SSM view)."""
        with self._lock:
            return [i for c in self._clusters.values() for i in c.instances]
