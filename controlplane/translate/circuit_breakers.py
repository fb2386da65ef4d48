"""Circuit breakers: per-proxy limits towards one service, always on (never Envoy's 'effectively off')."""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2
from envoy.config.core.v3 import base_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from controlplane.model.mesh import Service

# With a retry budget, at least this many retries may run at once however few calls are active.
MIN_RETRY_CONCURRENCY = 3


def circuit_breakers(service: Service) -> circuit_breaker_pb2.CircuitBreakers:
    limits = service.policy.circuit_breakers
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        priority=base_pb2.DEFAULT,
        max_connections=wrappers_pb2.UInt32Value(value=limits.max_connections),
        max_pending_requests=wrappers_pb2.UInt32Value(value=limits.max_pending_requests),
        max_requests=wrappers_pb2.UInt32Value(value=limits.max_requests),
        max_retries=wrappers_pb2.UInt32Value(value=limits.max_retries),
    )
    budget = service.policy.retry.budget_percent
    if budget is not None:
        # A retry budget replaces max_retries: retries may be this share of the active calls.
        threshold.retry_budget.CopyFrom(
            circuit_breaker_pb2.CircuitBreakers.Thresholds.RetryBudget(
                budget_percent=percent_pb2.Percent(value=budget),
                min_retry_concurrency=wrappers_pb2.UInt32Value(value=MIN_RETRY_CONCURRENCY),
            )
        )
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[threshold])


def grpc_circuit_breakers(service: Service) -> circuit_breaker_pb2.CircuitBreakers:
    """A proxyless gRPC client's limit: gRPC reads max_requests of the DEFAULT priority alone (gRFC A32)."""
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        priority=base_pb2.DEFAULT, max_requests=wrappers_pb2.UInt32Value(value=service.policy.circuit_breakers.max_requests)
    )
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[threshold])
