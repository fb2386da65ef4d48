"""Envoy ClusterLoadAssignments for every role: one LbEndpoint per task with its ECS health,
grouped by availability zone; and the single address of a sidecar's local app."""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Iterable

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2

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


def load_assignment(name: str, endpoints: Iterable[Endpoint], zone_weights: ZoneWeights) -> endpoint_pb2.ClusterLoadAssignment:
    """The tasks of cluster `name`, one locality per availability zone, zones in name order.

    Built in place, field by field: constructing each sub-message and copying it into its parent
    (or Struct.update) costs about three times as much, and an endpoint change builds its service's
    whole ClusterLoadAssignment."""
    by_zone: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        by_zone.setdefault(endpoint.availability_zone, []).append(endpoint)
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    for zone, group in sorted(by_zone.items()):
        locality = assignment.endpoints.add()
        locality.locality.zone = zone
        if zone_weights is ZoneWeights.EQUAL:
            locality.load_balancing_weight.value = 1
        elif zone_weights is ZoneWeights.BY_ENDPOINTS:
            locality.load_balancing_weight.value = max(1, len(group))
        for endpoint in group:
            lb_endpoint = locality.lb_endpoints.add()
            address = lb_endpoint.endpoint.address.socket_address
            address.address, address.port_value = endpoint.address, endpoint.port
            lb_endpoint.endpoint.hostname = endpoint.task_id
            lb_endpoint.health_status = HEALTH[endpoint.health]
            fields = lb_endpoint.metadata.filter_metadata[METADATA_NAMESPACE].fields
            fields["task_arn"].string_value = endpoint.task_arn
            fields["cluster"].string_value = endpoint.cluster
            fields["task_definition"].string_value = endpoint.task_definition
    return assignment


def service_load_assignment(service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """A service's endpoints as the edge and sidecars see them."""
    equal_zones = service.policy.load_balancing.locality is LocalityMode.EQUAL_ZONES
    return load_assignment(service.name, service.endpoints, ZoneWeights.EQUAL if equal_zones else ZoneWeights.NONE)


def memoised_service_load_assignment(memo: TranslationMemo, service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """service_load_assignment, built once per endpoint set and shared by the edge and every sidecar."""
    return memo.get_for("endpoints", service.name, memo.endpoints_key(service), lambda: service_load_assignment(service))


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
