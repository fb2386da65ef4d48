"""Envoy Cluster per service: EDS over ADS, HTTP/2 upstream for gRPC, and the service's traffic policy."""

from __future__ import annotations

import functools

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import duration_pb2

from controlplane.translate.packing import pack
from controlplane.model.mesh import LbPolicy, LocalityMode, Service
from controlplane.translate.circuit_breakers import circuit_breakers
from controlplane.translate.config_source import ads_config_source
from controlplane.translate.durations import duration
from controlplane.translate.health_check import health_checks
from controlplane.translate.outlier import outlier_detection
from controlplane.translate.tls import upstream_transport_socket

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
CONNECT_TIMEOUT_SECONDS = 2

LB_POLICIES = {
    LbPolicy.ROUND_ROBIN: cluster_pb2.Cluster.ROUND_ROBIN,
    LbPolicy.LEAST_REQUEST: cluster_pb2.Cluster.LEAST_REQUEST,
    LbPolicy.RANDOM: cluster_pb2.Cluster.RANDOM,
    LbPolicy.RING_HASH: cluster_pb2.Cluster.RING_HASH,
    LbPolicy.MAGLEV: cluster_pb2.Cluster.MAGLEV,
}


@functools.lru_cache(maxsize=65536)
def service_cluster(service: Service) -> cluster_pb2.Cluster:
    """The upstream cluster of one service, its endpoints delivered by EDS."""
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if service.protocol.is_http2:
        options.explicit_http_config.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    else:
        options.explicit_http_config.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    packed = pack(options)
    balancing = service.policy.load_balancing
    cluster = cluster_pb2.Cluster(
        name=service.name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_config_source()),
        connect_timeout=duration_pb2.Duration(seconds=CONNECT_TIMEOUT_SECONDS),
        lb_policy=LB_POLICIES[balancing.policy],
        # ECS is the source of truth for health here: panic routing would send calls to draining
        # tasks when most of a small service is being replaced, so it is off.
        common_lb_config=cluster_pb2.Cluster.CommonLbConfig(healthy_panic_threshold=percent_pb2.Percent(value=0.0)),
        circuit_breakers=circuit_breakers(service),
        health_checks=health_checks(service),
    )
    if balancing.slow_start_ms:
        slow_start = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=duration(balancing.slow_start_ms))
        if balancing.policy is LbPolicy.LEAST_REQUEST:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
        else:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
    if balancing.locality is LocalityMode.ZONE_AWARE:
        # Prefers the proxy's own zone; Envoy needs the proxy's local cluster (sidecars) to know it.
        cluster.common_lb_config.zone_aware_lb_config.SetInParent()
    elif balancing.locality is LocalityMode.EQUAL_ZONES:
        # Each zone gets an equal share whatever its task count (EDS gives every locality weight 1).
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
    detection = outlier_detection(service)
    if detection is not None:
        cluster.outlier_detection.CopyFrom(detection)
    transport_socket = upstream_transport_socket(service)
    if transport_socket is not None:
        cluster.transport_socket.CopyFrom(transport_socket)
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(packed)
    return cluster
