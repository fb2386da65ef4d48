"""What a proxyless gRPC client gets of a service's policy: the part gRPC's xDS client applies,
nothing it would refuse (NACK) or silently ignore."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from controlplane.model.mesh import (
    CircuitBreakers,
    LbPolicy,
    LoadBalancing,
    OutlierDetection,
    RetryPolicy,
    Service,
    Split,
    Timeouts,
    TrafficPolicy,
    WeightedTarget,
)
from controlplane.model.schema import GRPC_RETRY_ON
from controlplane.proxy.roles import GrpcClientRole
from controlplane.translate import translate
from controlplane.translate.cluster import grpc_client_cluster
from controlplane.translate.retry import grpc_retry_on, grpc_retry_policy
from controlplane.translate.route import grpc_client_routes
from controlplane.xds.types import TypeUrl

from .xds import mesh, service


def with_policy(svc: Service, **policy: object) -> Service:
    return dataclasses.replace(svc, policy=TrafficPolicy(**policy))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("retry_on", "kept"),
    [
        (("unavailable",), ("unavailable",)),
        (("unavailable", "connect-failure", "resource-exhausted"), ("unavailable", "resource-exhausted")),
        (GRPC_RETRY_ON, GRPC_RETRY_ON),
        (("connect-failure", "refused-stream", "reset-before-request"), ()),
    ],
)
def test_a_grpc_client_retries_on_grpc_statuses_only(retry_on: tuple[str, ...], kept: tuple[str, ...]) -> None:
    assert grpc_retry_on(RetryPolicy(retry_on=retry_on)) == kept


def test_no_retry_policy_when_nothing_is_left_to_retry_on_or_no_retry_is_allowed() -> None:
    assert grpc_retry_policy(RetryPolicy()) is None  # the default: connection conditions only
    assert grpc_retry_policy(RetryPolicy(retry_on=("unavailable",), num_retries=0)) is None  # gRPC NACKs 0


def test_a_grpc_client_retry_policy_carries_only_what_grpc_reads() -> None:
    policy = grpc_retry_policy(RetryPolicy(retry_on=("connect-failure", "unavailable"), num_retries=3, per_try_timeout_ms=250, budget_percent=20.0))
    assert policy is not None
    assert (policy.retry_on, policy.num_retries.value) == ("unavailable", 3)
    assert policy.retry_back_off.base_interval.ToMilliseconds() == 25
    assert not policy.HasField("per_try_timeout") and not policy.retry_host_predicate


@pytest.mark.parametrize(
    ("lb", "expected"),
    [
        (LbPolicy.ROUND_ROBIN, cluster_pb2.Cluster.ROUND_ROBIN),
        (LbPolicy.RING_HASH, cluster_pb2.Cluster.RING_HASH),
        # gRPC refuses these lb_policy values (the whole Cluster would be NACKed): round robin instead.
        (LbPolicy.LEAST_REQUEST, cluster_pb2.Cluster.ROUND_ROBIN),
        (LbPolicy.RANDOM, cluster_pb2.Cluster.ROUND_ROBIN),
        (LbPolicy.MAGLEV, cluster_pb2.Cluster.ROUND_ROBIN),
    ],
)
def test_a_grpc_client_cluster_balances_as_grpc_can(lb: LbPolicy, expected: int) -> None:
    assert grpc_client_cluster(with_policy(service("a", "127.0.0.1"), load_balancing=LoadBalancing(policy=lb))).lb_policy == expected


def test_a_grpc_client_cluster_carries_max_requests_and_no_envoy_only_policy() -> None:
    svc = with_policy(
        service("a", "127.0.0.1"),
        circuit_breakers=CircuitBreakers(max_requests=7, max_connections=3),
        outlier_detection=OutlierDetection(consecutive_5xx=3),
    )
    message = grpc_client_cluster(svc)
    (threshold,) = message.circuit_breakers.thresholds
    assert threshold.max_requests.value == 7 and not threshold.HasField("max_connections")
    # gRPC ignores consecutive-failure triggers (gRFC A50): an outlier_detection would do nothing.
    assert not message.HasField("outlier_detection") and not message.health_checks


def test_a_grpc_client_route_splits_by_weight_and_limits_call_duration() -> None:
    svc = dataclasses.replace(
        with_policy(service("a", "127.0.0.1"), timeouts=Timeouts(max_stream_duration_ms=2000, grpc_timeout_header_max_ms=1000)),
        split=Split((WeightedTarget("a", 90), WeightedTarget("a-next", 10))),
    )
    action = grpc_client_routes(svc).virtual_hosts[0].routes[0].route
    assert [(c.name, c.weight.value) for c in action.weighted_clusters.clusters] == [("a", 90), ("a-next", 10)]
    assert action.max_stream_duration.max_stream_duration.ToMilliseconds() == 2000
    assert action.max_stream_duration.grpc_timeout_header_max.ToMilliseconds() == 1000
    assert not action.HasField("retry_policy")


def test_a_grpc_client_gets_the_cluster_and_endpoints_of_every_split_target_and_depends_on_them() -> None:
    caller = dataclasses.replace(service("caller", "127.0.9.1"), upstreams=("a",))
    a = dataclasses.replace(service("a", "127.0.0.1"), split=Split((WeightedTarget("a", 90), WeightedTarget("a-next", 10))))
    resources = translate(mesh(caller, a, service("a-next", "127.0.0.2"), service("other", "127.0.0.3")), GrpcClientRole(service="caller"))
    assert sorted(resources.of(TypeUrl.CLUSTER)) == sorted(resources.of(TypeUrl.ENDPOINT)) == ["a", "a-next"]
    assert sorted(resources.of(TypeUrl.ROUTE)) == sorted(resources.of(TypeUrl.LISTENER)) == ["a"]
    # A change to a-next (its endpoints, settings, presence) must reach this client.
    assert resources.depends_on == {"caller", "a", "a-next"}
