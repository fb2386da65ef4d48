"""Active health checks: the gRPC health checking protocol, an HTTP GET or a TCP connect, per the service's labels."""

from __future__ import annotations

from envoy.config.core.v3 import health_check_pb2
from envoy.type.v3 import http_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import HealthCheckKind, Protocol, Service
from controlplane.translate.durations import duration


def health_checks(service: Service) -> list[health_check_pb2.HealthCheck]:
    """Zero or one health check for the service's cluster."""
    check = service.policy.health_check
    if not check.enabled:
        return []
    message = health_check_pb2.HealthCheck(
        timeout=duration(check.timeout_ms),
        interval=duration(check.interval_ms),
        # A cluster that has had no traffic yet is otherwise checked only every 60 s: a new service
        # would keep a dead task for a minute.
        no_traffic_interval=duration(check.interval_ms),
        healthy_threshold=wrappers_pb2.UInt32Value(value=check.healthy_threshold),
        unhealthy_threshold=wrappers_pb2.UInt32Value(value=check.unhealthy_threshold),
    )
    if check.kind is HealthCheckKind.TCP:
        # No payload: a connect-only check (the task accepts connections).
        message.tcp_health_check.SetInParent()
    elif check.kind is HealthCheckKind.GRPC:
        message.grpc_health_check.CopyFrom(health_check_pb2.HealthCheck.GrpcHealthCheck(service_name=check.grpc_service))
    else:
        message.http_health_check.CopyFrom(
            health_check_pb2.HealthCheck.HttpHealthCheck(
                path=check.path,
                codec_client_type=http_pb2.HTTP2 if service.protocol is not Protocol.HTTP1 else http_pb2.HTTP1,
            )
        )
    return [message]
