"""Outlier detection: eject tasks that keep failing. Every trigger is off unless its label is set."""

from __future__ import annotations

from envoy.config.cluster.v3 import outlier_detection_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import OutlierDetection, Service
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
    message = outlier_detection_pb2.OutlierDetection(
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
        **_shared(policy),
    )
    # Unset, Envoy's enforcing_failure_percentage is 0 already: the fields are left out then.
    if policy.failure_percent is not None:
        _set_failure_percentage(message, policy, policy.failure_percent)
    return message


def grpc_outlier_detection(service: Service) -> outlier_detection_pb2.OutlierDetection | None:
    """What a proxyless gRPC client applies (gRFC A50): failure-percentage ejection only, None
    without `outlier.failure-percent`. gRPC ignores the consecutive triggers, so they are left out;
    success rate is on unless enforcing_success_rate is 0. A50 NACKs a percentage above 100, which
    the label grammar already refuses."""
    policy = service.policy.outlier_detection
    if policy.failure_percent is None:
        return None
    message = outlier_detection_pb2.OutlierDetection(enforcing_success_rate=_u32(0), **_shared(policy))
    _set_failure_percentage(message, policy, policy.failure_percent)
    return message


def _shared(policy: OutlierDetection) -> dict[str, object]:
    """The ejection settings every trigger uses."""
    return dict(
        interval=duration(policy.interval_ms),
        base_ejection_time=duration(policy.base_ejection_ms),
        max_ejection_percent=_u32(policy.max_ejection_percent),
    )


def _set_failure_percentage(message: outlier_detection_pb2.OutlierDetection, policy: OutlierDetection, percent: int) -> None:
    """Ejects a task whose share of failed calls in an interval is at or above `percent`."""
    message.failure_percentage_threshold.value = percent
    message.enforcing_failure_percentage.value = 100
    message.failure_percentage_minimum_hosts.value = policy.failure_min_tasks
    message.failure_percentage_request_volume.value = policy.failure_min_requests
