"""The translation memo: what an endpoint change or a settings change re-creates, and its bounds."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import generate_latest

from controlplane.admin.metrics import Metrics
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, RetryPolicy, Service, Split, TrafficPolicy, WeightedTarget
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, SidecarRole
from controlplane.translate import Resources, TranslationMemo, translate
from controlplane.xds.types import ORDER, TypeUrl

from .xds import mesh, service

EDGE = EdgeRole("127.0.0.1", 10000)
SIDECAR = SidecarRole(service="caller", inbound_address="127.0.0.1", inbound_port=15000, app_port=8080)
CLIENT = GrpcClientRole(service="caller")
ROLES = (EDGE, SIDECAR, CLIENT)


def world(*services: Service) -> Mesh:
    caller = dataclasses.replace(service("caller", "127.0.9.1"), upstreams=tuple(s.name for s in services))
    return mesh(caller, *services)


def with_endpoints(svc: Service, *addresses: str) -> Service:
    return dataclasses.replace(
        svc,
        endpoints=tuple(
            Endpoint(a, 50051, f"arn:aws:ecs:eu-west-1:1:task/prod/{svc.name}-{a}", "prod", f"{svc.name}:1", EndpointHealth.HEALTHY)
            for a in addresses
        ),
    )


def serialized(resources: Resources) -> dict[TypeUrl, dict[str, bytes]]:
    return {t: {n: m.SerializeToString(deterministic=True) for n, m in resources.of(t).items()} for t in ORDER}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.key)
def test_an_endpoint_change_recreates_only_that_services_load_assignment(role: object) -> None:
    memo = TranslationMemo()
    a, b = service("a", "127.0.0.1"), service("b", "127.0.1.1")
    before = translate(world(a, b), role, memo)  # type: ignore[arg-type]
    after = translate(world(with_endpoints(a, "127.0.0.1", "127.0.0.2"), b), role, memo)  # type: ignore[arg-type]

    for type_url in (TypeUrl.CLUSTER, TypeUrl.LISTENER, TypeUrl.ROUTE):
        for name, message in after.of(type_url).items():
            if type_url is TypeUrl.ROUTE and isinstance(role, EdgeRole):
                continue  # the edge's one route configuration is assembled per mesh; its routes are shared
            assert message is before.of(type_url)[name], (type_url.short, name)
    assert after.of(TypeUrl.ENDPOINT)["b"] is before.of(TypeUrl.ENDPOINT)["b"]
    assert after.of(TypeUrl.ENDPOINT)["a"] is not before.of(TypeUrl.ENDPOINT)["a"]
    assert serialized(after) == serialized(translate(world(with_endpoints(a, "127.0.0.1", "127.0.0.2"), b), role))  # type: ignore[arg-type]


def test_the_edge_shares_each_services_route_across_endpoint_changes() -> None:
    memo = TranslationMemo()
    a, b = service("a", "127.0.0.1"), service("b", "127.0.1.1")
    before = translate(mesh(a, b), EDGE, memo).of(TypeUrl.ROUTE)["edge"]
    after = translate(mesh(with_endpoints(a, "127.0.0.9"), b), EDGE, memo).of(TypeUrl.ROUTE)["edge"]
    assert [r for vh in after.virtual_hosts for r in vh.routes] == [r for vh in before.virtual_hosts for r in vh.routes]  # type: ignore[attr-defined]


def test_a_settings_change_recreates_only_that_services_cluster_and_route() -> None:
    memo = TranslationMemo()
    a, b = service("a", "127.0.0.1"), service("b", "127.0.1.1")
    before = translate(world(a, b), SIDECAR, memo)
    retried = dataclasses.replace(a, policy=TrafficPolicy(retry=RetryPolicy(num_retries=5)))
    after = translate(world(retried, b), SIDECAR, memo)

    assert after.of(TypeUrl.CLUSTER)["b"] is before.of(TypeUrl.CLUSTER)["b"]
    assert after.of(TypeUrl.ENDPOINT)["a"] is before.of(TypeUrl.ENDPOINT)["a"]
    assert after.of(TypeUrl.ROUTE)["outbound"] is not before.of(TypeUrl.ROUTE)["outbound"]
    (vhost_a,) = [vh for vh in after.of(TypeUrl.ROUTE)["outbound"].virtual_hosts if vh.name == "a"]  # type: ignore[attr-defined]
    assert vhost_a.routes[0].route.retry_policy.num_retries.value == 5


def test_a_settings_change_reaches_a_grpc_clients_cluster_and_route() -> None:
    """The gRPC client's cluster and route carry the service's policy and split: keyed on its settings."""
    memo = TranslationMemo()
    a, b = service("a", "127.0.0.1"), service("b", "127.0.1.1")
    before = translate(world(a, b), CLIENT, memo)
    retried = dataclasses.replace(a, policy=TrafficPolicy(retry=RetryPolicy(retry_on=("unavailable",), num_retries=4)))
    after = translate(world(retried, b), CLIENT, memo)

    assert after.of(TypeUrl.CLUSTER)["b"] is before.of(TypeUrl.CLUSTER)["b"]
    assert after.of(TypeUrl.ROUTE)["b"] is before.of(TypeUrl.ROUTE)["b"]
    assert after.of(TypeUrl.LISTENER)["a"] is before.of(TypeUrl.LISTENER)["a"]
    assert after.of(TypeUrl.ROUTE)["a"].virtual_hosts[0].routes[0].route.retry_policy.num_retries.value == 4  # type: ignore[attr-defined]
    split = dataclasses.replace(retried, split=Split((WeightedTarget("a", 50), WeightedTarget("b", 50))))
    weighted = translate(world(split, b), CLIENT, memo).of(TypeUrl.ROUTE)["a"]
    assert [c.name for c in weighted.virtual_hosts[0].routes[0].route.weighted_clusters.clusters] == ["a", "b"]  # type: ignore[attr-defined]
    assert serialized(translate(world(split, b), CLIENT, memo)) == serialized(translate(world(split, b), CLIENT))


def test_the_same_message_serves_every_role_that_sends_it() -> None:
    memo = TranslationMemo()
    m = world(service("a", "127.0.0.1"))
    edge, sidecar = translate(m, EDGE, memo), translate(m, SIDECAR, memo)
    assert sidecar.of(TypeUrl.CLUSTER)["a"] is edge.of(TypeUrl.CLUSTER)["a"]
    assert sidecar.of(TypeUrl.ENDPOINT)["a"] is edge.of(TypeUrl.ENDPOINT)["a"]


def test_what_the_memo_holds_follows_the_mesh_not_the_number_of_changes() -> None:
    """1,000 endpoint changes: superseded endpoint sets are dropped, so the size stays flat."""
    memo = TranslationMemo()
    others = [service(f"s{i}", f"127.0.{i}.1", f"127.0.{i}.2") for i in range(10)]
    sizes = []
    for change in range(1000):
        moving = service("moving", f"127.1.{change // 250}.{change % 250 + 1}")
        m = world(moving, *others)
        for role in ROLES:
            translate(m, role, memo)
        sizes.append(memo.size_bytes())
    assert sizes[-1] > 0
    assert max(sizes[10:]) <= sizes[9] * 1.1, (sizes[9], max(sizes[10:]))


def test_the_memo_stays_within_its_bound_in_bytes() -> None:
    unbounded = TranslationMemo()
    m = world(*(service(f"s{i}", f"127.0.{i}.1") for i in range(20)))
    translate(m, EDGE, unbounded)
    bound = unbounded.size_bytes() // 3
    bounded = TranslationMemo(max_bytes=bound)
    resources = translate(m, EDGE, bounded)
    assert 0 < bounded.size_bytes() <= bound
    assert serialized(resources) == serialized(translate(m, EDGE))


def test_a_memo_of_zero_bytes_keeps_nothing_and_a_negative_bound_is_refused() -> None:
    memo = TranslationMemo(max_bytes=0)
    m = world(service("a", "127.0.0.1"))
    assert translate(m, EDGE, memo).of(TypeUrl.CLUSTER)["a"] is not translate(m, EDGE, memo).of(TypeUrl.CLUSTER)["a"]
    assert memo.size_bytes() == 0 and len(memo) == 0
    with pytest.raises(ValueError, match="max_bytes=-1"):
        TranslationMemo(max_bytes=-1)


def test_the_memo_size_is_a_metric() -> None:
    memo = TranslationMemo()
    translate(world(service("a", "127.0.0.1")), EDGE, memo)
    metrics = Metrics()
    metrics.track_translation_cache(memo.size_bytes)
    lines = [line for line in generate_latest(metrics.registry).decode().splitlines() if line.startswith("controlplane_translation_cache_bytes ")]
    assert lines == [f"controlplane_translation_cache_bytes {float(memo.size_bytes())}"]
    assert memo.size_bytes() > 0
