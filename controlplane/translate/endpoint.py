"""Envoy ClusterLoadAssignments for every role: one LbEndpoint per task with its ECS health,
grouped by availability zone; and the single address of a sidecar's local app."""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Iterable

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import struct_pb2, wrappers_pb2

from controlplane.model.mesh import Endpoint, EndpointHealth, LocalityMode, Service
from controlplane.translate.memo import TranslationMemo

HEALTH = MappingProxyType({
    EndpointHealth.HEALTHY: health_check_pb2.HEALTHY,
    EndpointHealth.UNHEALTHY: health_check_pb2.UNHEALTHY,
    EndpointHealth.DRAINING: health_check_pb2.DRAINING,
})
METADATA_NAMESPACE = "ecs"


class ZoneWeights(Enum):
    """The load_balancing_weight each zone (locality) gets."""

    NONE = "none"  # Envoy: zones carry no weight unless locality-weighted balancing asks for it
    EQUAL = "equal"  # locality-weighted balancing, each zone an equal share
    BY_ENDPOINTS = "by-endpoints"  # gRPC ignores localities without a weight: weigh each by its endpoints


def _socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def _lb_endpoint(endpoint: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    metadata = struct_pb2.Struct()
    metadata.update({"task_arn": endpoint.task_arn, "cluster": endpoint.cluster, "task_definition": endpoint.task_definition})
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=_socket_address(endpoint.address, endpoint.port), hostname=endpoint.task_id),
        health_status=HEALTH[endpoint.health],
        metadata=base_pb2.Metadata(filter_metadata={METADATA_NAMESPACE: metadata}),
    )


def load_assignment(name: str, endpoints: Iterable[Endpoint], zone_weights: ZoneWeights) -> endpoint_pb2.ClusterLoadAssignment:
    """The tasks of cluster `name`, one locality per availability zone, zones in name order."""
    by_zone: dict[str, list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in endpoints:
        by_zone.setdefault(endpoint.availability_zone, []).append(_lb_endpoint(endpoint))

    def weight(lb_endpoints: list[endpoint_components_pb2.LbEndpoint]) -> wrappers_pb2.UInt32Value | None:
        if zone_weights is ZoneWeights.EQUAL:
            return wrappers_pb2.UInt32Value(value=1)
        if zone_weights is ZoneWeights.BY_ENDPOINTS:
            return wrappers_pb2.UInt32Value(value=max(1, len(lb_endpoints)))
        return None

    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(zone=zone), lb_endpoints=lb_endpoints, load_balancing_weight=weight(lb_endpoints)
            )
            for zone, lb_endpoints in sorted(by_zone.items())
        ],
    )


def service_load_assignment(service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """A service's endpoints as the edge and sidecars see them."""
    equal_zones = service.policy.load_balancing.locality is LocalityMode.EQUAL_ZONES
    return load_assignment(service.name, service.endpoints, ZoneWeights.EQUAL if equal_zones else ZoneWeights.NONE)


def memoised_service_load_assignment(memo: TranslationMemo, service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """service_load_assignment, built once per endpoint set and shared by the edge and every sidecar."""
    return memo.get("endpoints", memo.endpoints_key(service), lambda: service_load_assignment(service))


def grpc_client_load_assignment(service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """A service's endpoints for a proxyless gRPC client."""
    return load_assignment(service.name, service.endpoints, ZoneWeights.BY_ENDPOINTS)


def single_address_assignment(name: str, address: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    """One address, no zone: the app next to a sidecar."""
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=_socket_address(address, port)))]
            )
        ],
    )
