"""Envoy Clusters for every role, from one function with one set of defaults: a service's cluster
(edge, sidecar upstreams), a proxyless gRPC client's cluster, and the sidecar's local app."""

from __future__ import annotations

from types import MappingProxyType

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2

from controlplane.model.mesh import LbPolicy, LocalityMode, Protocol, Service
from controlplane.translate.circuit_breakers import circuit_breakers, grpc_circuit_breakers
from controlplane.translate.config_source import ads_config_source
from controlplane.translate.durations import duration
from controlplane.translate.endpoint import single_address_assignment
from controlplane.translate.health_check import health_checks
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.outlier import grpc_outlier_detection, outlier_detection
from controlplane.translate.packing import pack
from controlplane.translate.patch import patched_or_kept
from controlplane.translate.tls import upstream_transport_socket

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
LOCAL_APP = "local_app"
# Every cluster's connect timeout (Envoy's default is 5 s). Tasks are in the same VPC as their
# callers, and the sidecar's app on the same host: a connection not up in 2 s is better retried
# on another task (retry_on connect-failure) than waited for.
CONNECT_TIMEOUT_MS = 2000

LB_POLICIES = MappingProxyType({
    LbPolicy.ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    LbPolicy.LEAST_REQUEST: cluster_pb2.Cluster.LEAST_REQUEST,
    LbPolicy.RANDOM: cluster_pb2.Cluster.RANDOM,
    LbPolicy.RING_HASH: cluster_pb2.Cluster.RING_HASH,
    LbPolicy.MAGLEV: cluster_pb2.Cluster.MAGLEV,
})


def cluster(
    name: str,
    *,
    protocol: Protocol | None = None,
    policy_of: Service | None = None,
    static: endpoint_pb2.ClusterLoadAssignment | None = None,
) -> cluster_pb2.Cluster:
    """Every Cluster we send. Endpoints come by EDS over ADS unless `static` gives them inline;
    `protocol` sets the upstream HTTP version (None: the client decides, as gRPC does); `policy_of`
    applies that service's traffic policy (None: the defaults of Envoy or the gRPC client)."""
    message = cluster_pb2.Cluster(name=name, connect_timeout=duration(CONNECT_TIMEOUT_MS), lb_policy=cluster_pb2.Cluster.ROUND_ROBIN)
    if static is None:
        message.type = cluster_pb2.Cluster.EDS
        message.eds_cluster_config.eds_config.CopyFrom(ads_config_source())
    else:
        message.type = cluster_pb2.Cluster.STATIC
        message.load_assignment.CopyFrom(static)
    if policy_of is not None:
        _apply_policy(message, policy_of)
    if protocol is not None:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        if protocol.is_http2:
            options.explicit_http_config.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
        else:
            options.explicit_http_config.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
        message.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(pack(options))
    return message


def _apply_policy(message: cluster_pb2.Cluster, service: Service) -> None:
    balancing = service.policy.load_balancing
    message.lb_policy = LB_POLICIES[balancing.policy]
    # ECS is the source of truth for health here: panic routing would send calls to draining
    # tasks when most of a small service is being replaced, so it is off.
    message.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=0.0))
    message.circuit_breakers.CopyFrom(circuit_breakers(service))
    message.health_checks.extend(health_checks(service))
    if balancing.slow_start_ms:
        slow_start = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=duration(balancing.slow_start_ms))
        if balancing.policy is LbPolicy.LEAST_REQUEST:
            message.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
        else:
            message.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
    if balancing.locality is LocalityMode.ZONE_AWARE:
        # Prefers the proxy's own zone; Envoy needs the proxy's zone and local cluster (its own fleet) to know it.
        message.common_lb_config.zone_aware_lb_config.SetInParent()
        if balancing.zone_min_tasks is not None:
            message.common_lb_config.zone_aware_lb_config.min_cluster_size.value = balancing.zone_min_tasks
    elif balancing.locality is LocalityMode.EQUAL_ZONES:
        # Each zone gets an equal share whatever its task count (EDS gives every locality weight 1).
        message.common_lb_config.locality_weighted_lb_config.SetInParent()
    detection = outlier_detection(service)
    if detection is not None:
        message.outlier_detection.CopyFrom(detection)
    transport_socket = upstream_transport_socket(service)
    if transport_socket is not None:
        message.transport_socket.CopyFrom(transport_socket)


def service_cluster(service: Service, *, local_fleet: bool = False, patch: bool = True) -> cluster_pb2.Cluster:
    """A service's cluster as the edge and sidecars see it: its protocol and traffic policy, and its
    `xds.patch.cluster` (patch.py) unless `patch` is False. For a proxy with a local fleet
    (`local_fleet`), a service that is not zone-aware turns Envoy's zone routing off: Envoy routes
    zone-aware by default as soon as a local cluster exists."""
    message = cluster(service.name, protocol=_http(service), policy_of=service)
    if local_fleet and service.policy.load_balancing.locality is LocalityMode.NONE:
        message.common_lb_config.zone_aware_lb_config.routing_enabled.value = 0.0
    return patched_or_kept(message, service.policy.patches.cluster) if patch else message


def memoised_service_cluster(memo: TranslationMemo, service: Service, *, local_fleet: bool = False) -> cluster_pb2.Cluster:
    """service_cluster, built once per service settings (and local fleet or not) and shared by the edge and every sidecar."""
    if local_fleet:
        return memo.get_for("cluster/local-fleet", service.name, memo.settings_key(service), lambda: service_cluster(service, local_fleet=True))
    return memo.get_for("cluster", service.name, memo.settings_key(service), lambda: service_cluster(service))


def grpc_client_cluster(service: Service) -> cluster_pb2.Cluster:
    """A service's cluster for a proxyless gRPC client, which always speaks HTTP/2: the part of the
    service's policy gRPC applies, ring hash (gRFC A42), max_requests (A32) and failure-percentage
    outlier detection (A50). gRPC refuses the other lb_policy values (NACK), so they stay round
    robin; it ignores active health checks, slow start, zone-aware routing and the
    consecutive-failure outlier triggers (A50 implements only success-rate and failure-percentage
    ejection), and its TLS needs certificate providers in the client's bootstrap: none of these is sent."""
    message = cluster(service.name)
    if service.policy.load_balancing.policy is LbPolicy.RING_HASH:
        message.lb_policy = cluster_pb2.Cluster.RING_HASH
    message.circuit_breakers.CopyFrom(grpc_circuit_breakers(service))
    detection = grpc_outlier_detection(service)
    if detection is not None:
        message.outlier_detection.CopyFrom(detection)
    return message


def memoised_grpc_client_cluster(memo: TranslationMemo, service: Service) -> cluster_pb2.Cluster:
    """grpc_client_cluster, built again only when the service's settings change."""
    return memo.get_for("cluster/grpc-client", service.name, memo.settings_key(service), lambda: grpc_client_cluster(service))


def local_app_cluster(own: Service | None, address: str, port: int) -> cluster_pb2.Cluster:
    """The app next to a sidecar; it speaks the protocol its own labels declare."""
    return cluster(LOCAL_APP, protocol=_http(own) if own else None, static=single_address_assignment(LOCAL_APP, address, port))


def _http(service: Service) -> Protocol | None:
    """The HTTP version a service's cluster speaks upstream; None for TCP (bytes, no HTTP options)."""
    return service.protocol if service.protocol.is_http else None
