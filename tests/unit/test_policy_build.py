"""Policies across task definitions: weighted splits, per-revision subsets, rollouts, route keys."""

from __future__ import annotations

from controlplane.model.build import build_mesh
from controlplane.model.mesh import LbPolicy, Split, WeightedTarget

from .builders import cluster_state, task, task_definition


def test_weights_naming_an_unknown_service_are_dropped_with_a_warning_and_the_route_kept() -> None:
    orders = task_definition("orders", 3, {"xds.service": "orders", "xds.route.weights": "orders:90,orders-nxt:10"})
    mesh = build_mesh([cluster_state([task(orders, "o1", "127.0.0.1")], [orders])])
    service = mesh.service("orders")
    assert service is not None and service.split == Split((WeightedTarget("orders", 90),))
    (warning,) = mesh.problems
    assert warning.severity == "warning" and warning.label == "xds.route.weights"
    assert "names 'orders-nxt', which no running task serves; the remaining weights are used" in warning.message


def test_a_split_with_no_target_left_goes_to_the_service_itself() -> None:
    orders = task_definition("orders", 3, {"xds.service": "orders", "xds.route.weights": "gone:100"})
    mesh = build_mesh([cluster_state([task(orders, "o1", "127.0.0.1")], [orders])])
    assert mesh.service("orders").split is None  # type: ignore[union-attr]
    assert "calls go to 'orders'" in mesh.problems[0].message


def test_newest_revision_weight_splits_by_revision_in_proportion() -> None:
    old = task_definition("pay", 6, {"xds.service": "pay"})
    new = task_definition("pay", 7, {"xds.service": "pay", "xds.route.newest-revision-weight": "25"})
    tasks = [task(old, "a", "127.0.0.1"), task(old, "b", "127.0.0.2"), task(new, "c", "127.0.0.3")]
    mesh = build_mesh([cluster_state(tasks, [old, new])])
    assert [s.name for s in mesh.services] == ["pay", "pay@pay:6", "pay@pay:7"]
    pay = mesh.service("pay")
    assert pay is not None and pay.split == Split((WeightedTarget("pay@pay:7", 50), WeightedTarget("pay@pay:6", 150)))
    assert [e.task_id for e in mesh.service("pay@pay:6").endpoints] == ["a", "b"]  # type: ignore[union-attr]
    subset = mesh.service("pay@pay:7")
    assert subset is not None and subset.subset_of == "pay" and not subset.route.enabled
    # One revision only: no subsets.
    alone = build_mesh([cluster_state([task(new, "c", "127.0.0.3")], [new])])
    assert [s.name for s in alone.services] == ["pay"] and alone.services[0].split is None


def test_mid_rollout_policy_disagreement_uses_the_newest_revision_and_keeps_the_route() -> None:
    old = task_definition("api", 1, {"xds.service": "api", "xds.lb.policy": "random"})
    new = task_definition("api", 2, {"xds.service": "api", "xds.lb.policy": "least_request"})
    mesh = build_mesh([cluster_state([task(old, "a", "127.0.0.1"), task(new, "b", "127.0.0.2")], [old, new])])
    api = mesh.service("api")
    assert api is not None and api.policy.load_balancing.policy is LbPolicy.LEAST_REQUEST and len(api.endpoints) == 2
    assert [p.severity for p in mesh.problems] == ["warning"]


def test_method_and_header_routes_do_not_clash_with_a_prefix_route() -> None:
    labels = [
        {"xds.service": "guide", "xds.route.prefix": "/g.G/"},
        {"xds.service": "getter", "xds.route.method": "/g.G/Get"},
        {"xds.service": "beta", "xds.route.prefix": "/g.G/", "xds.route.headers": "x-beta"},
        {"xds.service": "later", "xds.route.prefix": "/g.G/"},
    ]
    tds = [task_definition(l["xds.service"], 1, l) for l in labels]
    mesh = build_mesh([cluster_state([task(td, td.family, f"127.0.0.{n}") for n, td in enumerate(tds)], tds)])
    assert [s.name for s in mesh.services] == ["beta", "getter", "guide"]
    assert "its route on host * (prefix=/g.G/) has the same match as the route of service 'guide'" in mesh.problems[0].message


def test_upstreams_are_stored_on_the_service() -> None:
    td = task_definition("web", 1, {"xds.service": "web", "xds.upstreams": "users,orders"})
    mesh = build_mesh([cluster_state([task(td, "w", "127.0.0.1")], [td])])
    assert mesh.service("web").upstreams == ("orders", "users")  # type: ignore[union-attr]
