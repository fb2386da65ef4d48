"""Outlier detection: eject tasks that keep failing. Every trigger is off unless its label is set."""

from __future__ import annotations

from envoy.config.cluster.v3 import outlier_detection_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Service
from controlplane.translate.durations import duration


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def outlier_detection(service: Service) -> outlier_detection_pb2.OutlierDetection | None:
    """None when no outlier label is set. Envoy counts a gRPC status as its HTTP equivalent
    (UNAVAILABLE -> 503), so consecutive-5xx sees gRPC failures too."""
    policy = service.policy.outlier_detection
    if not policy.enabled:
        return None
    local = policy.consecutive_local_origin_failures
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=_u32(policy.consecutive_5xx or 5),
        enforcing_consecutive_5xx=_u32(100 if policy.consecutive_5xx else 0),
        consecutive_gateway_failure=_u32(policy.consecutive_gateway_errors or 5),
        enforcing_consecutive_gateway_failure=_u32(100 if policy.consecutive_gateway_errors else 0),
        # Local-origin failures (connect refused, timeouts, resets) counted apart from the task's answers.
        split_external_local_origin_errors=local is not None,
        consecutive_local_origin_failure=_u32(local or 5),
        enforcing_consecutive_local_origin_failure=_u32(100 if local else 0),
        enforcing_success_rate=_u32(0),
        enforcing_local_origin_success_rate=_u32(0),
        interval=duration(policy.interval_ms),
        base_ejection_time=duration(policy.base_ejection_ms),
        max_ejection_percent=_u32(policy.max_ejection_percent),
    )
