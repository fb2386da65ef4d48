"""Route retry policy: the default retries only calls that never reached a task; labels add gRPC
statuses. Proxyless gRPC clients get the part gRPC implements (gRFC A44): statuses only."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from google.protobuf import any_pb2, wrappers_pb2

from controlplane.model.mesh import DEFAULT_RETRY_ON, RetryPolicy
from controlplane.model.schema import GRPC_RETRY_ON
from controlplane.translate.durations import duration
from controlplane.translate.packing import pack

# Kept for the admin API and docs: calls that never reached a task are safe to send to another one.
DEFAULT_NUM_RETRIES = RetryPolicy().num_retries
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
RETRY_BASE_INTERVAL_MS = 25


def _previous_hosts() -> any_pb2.Any:
    return pack(previous_hosts_pb2.PreviousHostsPredicate())


def retry_policy(policy: RetryPolicy = RetryPolicy()) -> rc.RetryPolicy:
    """Retries go to another task (previous_hosts) after a 25 ms base back-off. gRPC statuses in
    retry_on (unavailable, cancelled, ...) are read from grpc-status, as x-envoy-retry-grpc-on does."""
    message = rc.RetryPolicy(
        retry_on=",".join(policy.retry_on),
        num_retries=wrappers_pb2.UInt32Value(value=policy.num_retries),
        retry_host_predicate=[rc.RetryPolicy.RetryHostPredicate(name=PREVIOUS_HOSTS, typed_config=_previous_hosts())],
        host_selection_retry_max_attempts=3,
        retry_back_off=rc.RetryPolicy.RetryBackOff(base_interval=duration(RETRY_BASE_INTERVAL_MS)),
    )
    if policy.per_try_timeout_ms:
        message.per_try_timeout.CopyFrom(duration(policy.per_try_timeout_ms))
    return message


def grpc_retry_on(policy: RetryPolicy) -> tuple[str, ...]:
    """The conditions of `policy` a gRPC client retries on: gRPC statuses. It cannot see the
    connection-level ones (connect-failure, refused-stream, reset-before-request); it retries a
    call that never reached the server's application by itself (transparent retry, gRFC A6)."""
    return tuple(condition for condition in policy.retry_on if condition in GRPC_RETRY_ON)


def grpc_retry_policy(policy: RetryPolicy) -> rc.RetryPolicy | None:
    """The retry policy of a proxyless gRPC client's route; None when nothing is left to retry on
    or no retry is allowed (gRPC refuses num_retries 0). gRPC ignores per_try_timeout, host
    predicates and budgets, so they are not sent; it makes at most 5 attempts, whatever num_retries says."""
    retry_on = grpc_retry_on(policy)
    if not retry_on or policy.num_retries == 0:
        return None
    return rc.RetryPolicy(
        retry_on=",".join(retry_on),
        num_retries=wrappers_pb2.UInt32Value(value=policy.num_retries),
        retry_back_off=rc.RetryPolicy.RetryBackOff(base_interval=duration(RETRY_BASE_INTERVAL_MS)),
    )


DEFAULT_RETRY_ON_TEXT = ",".join(DEFAULT_RETRY_ON)
