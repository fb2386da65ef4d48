"""Local rate limiting: a token bucket per route (per proxy), in the edge's local_ratelimit filter."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from envoy.type.v3 import percent_pb2, token_bucket_pb2
from google.protobuf import any_pb2, wrappers_pb2

from controlplane.model.mesh import Service
from controlplane.translate.durations import duration
from controlplane.translate.packing import pack

LOCAL_RATELIMIT = "envoy.filters.http.local_ratelimit"


def listener_filter_config() -> local_rate_limit_pb2.LocalRateLimit:
    """The filter in the connection manager: no bucket of its own, so it only acts on routes that have one."""
    return local_rate_limit_pb2.LocalRateLimit(stat_prefix="edge_ratelimit")


def _always(key: str) -> base_pb2.RuntimeFractionalPercent:
    return base_pb2.RuntimeFractionalPercent(
        default_value=percent_pb2.FractionalPercent(numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED),
        runtime_key=key,
    )


def route_rate_limit(service: Service) -> any_pb2.Any | None:
    """The per-route bucket, or None. Rejected gRPC calls get RESOURCE_EXHAUSTED (HTTP 429 for others)."""
    limit = service.policy.rate_limit
    if limit is None:
        return None
    config = local_rate_limit_pb2.LocalRateLimit(
        stat_prefix=f"ratelimit_{service.name}",
        token_bucket=token_bucket_pb2.TokenBucket(
            max_tokens=limit.max_tokens,
            tokens_per_fill=wrappers_pb2.UInt32Value(value=limit.average),
            fill_interval=duration(limit.period_ms),
        ),
        filter_enabled=_always(f"ratelimit.{service.name}.enabled"),
        filter_enforced=_always(f"ratelimit.{service.name}.enforced"),
        # Envoy would map its 429 to UNAVAILABLE, which clients treat as retryable right away.
        rate_limited_as_resource_exhausted=True,
    )
    return pack(config)
