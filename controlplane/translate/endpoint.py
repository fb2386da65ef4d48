"""Envoy ClusterLoadAssignment per service: one LbEndpoint per task, with its ECS health."""

from __future__ import annotations

import functools

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import struct_pb2, wrappers_pb2

from controlplane.model.mesh import EndpointHealth, LocalityMode, Service

HEALTH = {
    EndpointHealth.HEALTHY: health_check_pb2.HEALTHY,
    EndpointHealth.UNHEALTHY: health_check_pb2.UNHEALTHY,
    EndpointHealth.DRAINING: health_check_pb2.DRAINING,
}
METADATA_NAMESPACE = "ecs"


@functools.lru_cache(maxsize=65536)
def load_assignment(service: Service) -> endpoint_pb2.ClusterLoadAssignment:
    """The endpoints of a service, grouped by availability zone (one locality per zone)."""
    by_zone: dict[str, list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in service.endpoints:
        metadata = struct_pb2.Struct()
        metadata.update({"task_arn": endpoint.task_arn, "cluster": endpoint.cluster, "task_definition": endpoint.task_definition})
        lb_endpoint = endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=address_pb2.Address(
                    socket_address=address_pb2.SocketAddress(address=endpoint.address, port_value=endpoint.port)
                ),
                hostname=endpoint.task_id,
            ),
            health_status=HEALTH[endpoint.health],
            metadata=base_pb2.Metadata(filter_metadata={METADATA_NAMESPACE: metadata}),
        )
        by_zone.setdefault(endpoint.availability_zone, []).append(lb_endpoint)
    # Locality-weighted balancing needs a weight per locality: equal, so each zone gets an equal share.
    equal_zones = service.policy.load_balancing.locality is LocalityMode.EQUAL_ZONES
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=service.name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=base_pb2.Locality(zone=zone),
                lb_endpoints=lb_endpoints,
                load_balancing_weight=wrappers_pb2.UInt32Value(value=1) if equal_zones else None,
            )
            for zone, lb_endpoints in sorted(by_zone.items())
        ],
    )
