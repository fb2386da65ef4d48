"""Route and family ownership: deterministic rules, from ECS data only (docs/labels.md, "Route ownership")."""

from __future__ import annotations

import itertools

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh, ProblemKind

from .builders import cluster_state, task, task_definition


def _routes(mesh: Mesh) -> dict[str, list[str]]:
    return {vh.host: list(vh.routes) for vh in mesh.virtual_hosts}


def _kinds(mesh: Mesh) -> list[tuple[str | None, str, ProblemKind]]:
    return [(p.service, p.severity, p.kind) for p in mesh.problems]


def test_an_explicit_host_beats_a_wildcard_whatever_the_priority() -> None:
    wild = task_definition("wild", 1, {"xds.service": "wild", "xds.route.priority": "1000"})
    shop = task_definition("shop", 1, {"xds.service": "shop", "xds.route.hosts": "shop.example.com", "xds.route.prefix": "/cart/"})
    # The wildcard's tasks started first, and it has the highest priority: it still only falls back.
    tasks = [task(wild, "w", "127.0.0.1", started_at=1.0), task(shop, "s", "127.0.0.2", started_at=2.0)]

    mesh = build_mesh([cluster_state(tasks, [wild, shop])])

    assert _routes(mesh) == {"*": ["wild"], "shop.example.com": ["shop", "wild"]}
    assert mesh.problems == ()


def test_wildcard_fallbacks_go_from_the_most_specific_to_star() -> None:
    tds = [
        task_definition("star", 1, {"xds.service": "star"}),
        task_definition("example", 1, {"xds.service": "example", "xds.route.hosts": "*.example.com", "xds.route.prefix": "/e/"}),
        task_definition("shop", 1, {"xds.service": "shop", "xds.route.hosts": "*.shop.example.com", "xds.route.prefix": "/s/"}),
        task_definition("cart", 1, {"xds.service": "cart", "xds.route.hosts": "cart.shop.example.com", "xds.route.prefix": "/c/"}),
        # Its own "/" takes every call of its host: no fallback could ever match there, none is sent.
        task_definition("home", 1, {"xds.service": "home", "xds.route.hosts": "home.example.com"}),
    ]
    mesh = build_mesh([cluster_state([task(td, td.family, f"127.0.0.{i}") for i, td in enumerate(tds, 1)], tds)])

    assert _routes(mesh) == {
        "*": ["star"],
        "*.example.com": ["example", "star"],
        "*.shop.example.com": ["shop", "example", "star"],
        "cart.shop.example.com": ["cart", "shop", "example", "star"],
        "home.example.com": ["home"],
    }


def test_priority_orders_only_a_hosts_own_routes() -> None:
    low = task_definition("low", 1, {"xds.service": "low", "xds.route.hosts": "api.example.com", "xds.route.prefix": "/a/long/prefix/"})
    high = task_definition("high", 1, {"xds.service": "high", "xds.route.hosts": "api.example.com", "xds.route.prefix": "/b/", "xds.route.priority": "5"})
    mesh = build_mesh([cluster_state([task(low, "l", "127.0.0.1"), task(high, "h", "127.0.0.2")], [low, high])])
    assert _routes(mesh) == {"api.example.com": ["high", "low"]}


def test_a_high_priority_newcomer_cannot_take_an_established_route() -> None:
    orders = task_definition("orders", 3, {"xds.service": "orders", "xds.route.hosts": "api.example.com", "xds.route.prefix": "/orders/"})
    grabber = task_definition("grabber", 1, {"xds.service": "grabber", "xds.route.hosts": "api.example.com", "xds.route.priority": "1000"})
    tasks = [task(orders, "o", "127.0.0.1", started_at=10.0), task(grabber, "g", "127.0.0.2", started_at=20.0)]

    mesh = build_mesh([cluster_state(tasks, [orders, grabber])])

    assert [s.name for s in mesh.services] == ["orders"]
    (problem,) = mesh.problems
    assert (problem.service, problem.kind, problem.label, problem.task_definition) == (
        "grabber", ProblemKind.ROUTE_CONFLICT, "xds.route.priority", "grabber:1"
    )
    assert "would take every call of the route of service 'orders' (task definition orders:3, prefix=/orders/)" in problem.message


def test_an_established_route_that_takes_all_calls_of_a_newer_one_makes_it_a_warning() -> None:
    catch_all = task_definition("all", 1, {"xds.service": "all", "xds.route.hosts": "api.example.com", "xds.route.priority": "10"})
    later = task_definition("later", 1, {"xds.service": "later", "xds.route.hosts": "api.example.com", "xds.route.prefix": "/later/"})
    tasks = [task(catch_all, "a", "127.0.0.1", started_at=1.0), task(later, "l", "127.0.0.2", started_at=2.0)]

    mesh = build_mesh([cluster_state(tasks, [catch_all, later])])

    assert [s.name for s in mesh.services] == ["all", "later"]
    assert _kinds(mesh) == [("later", "warning", ProblemKind.SHADOWED_ROUTE)]
    assert "never matches: the route of service 'all' (prefix=/ priority=10) comes first" in mesh.problems[0].message


def test_another_family_with_other_settings_cannot_take_over_a_service() -> None:
    orders = task_definition("orders", 7, {"xds.service": "orders"})
    intruder = task_definition("intruder", 1, {"xds.service": "orders", "xds.protocol": "http1", "xds.timeout.route": "1ms"})
    tasks = [task(orders, "o1", "127.0.0.1", started_at=5.0), task(intruder, "i1", "127.0.0.9", started_at=9.0)]

    mesh = build_mesh([cluster_state(tasks, [orders, intruder])])

    service = mesh.service("orders")
    assert service is not None and service.declared_by == "orders:7" and service.protocol.value == "grpc"
    assert [e.task_id for e in service.endpoints] == ["o1"]
    (problem,) = mesh.problems
    assert (problem.kind, problem.severity, problem.task_definition, problem.label) == (
        ProblemKind.FAMILY_CONFLICT, "error", "intruder:1", "xds.service"
    )
    assert "belongs to task definition family 'orders' (orders:7)" in problem.message
    assert "family 'intruder' declares it with a different protocol, traffic policy" in problem.message
    # A higher revision number in the other family changes nothing: revisions of two families are not compared.
    intruder_99 = task_definition("intruder", 99, {"xds.service": "orders", "xds.protocol": "http1"})
    mesh = build_mesh([cluster_state([task(orders, "o1", "127.0.0.1", started_at=5.0), task(intruder_99, "i1", "127.0.0.9", started_at=9.0)], [orders, intruder_99])])
    assert mesh.service("orders").declared_by == "orders:7"  # type: ignore[union-attr]


def test_another_family_with_identical_settings_joins() -> None:
    fast = task_definition("orders-fast", 2, {"xds.service": "orders", "xds.route.prefix": "/o/"})
    slow = task_definition("orders-slow", 8, {"xds.service": "orders", "xds.route.prefix": "/o/"})
    tasks = [task(fast, "f", "127.0.0.1", started_at=1.0), task(slow, "s", "127.0.0.2", started_at=2.0)]
    mesh = build_mesh([cluster_state(tasks, [fast, slow])])
    assert [e.task_id for e in mesh.service("orders").endpoints] == ["f", "s"]  # type: ignore[union-attr]
    assert mesh.problems == ()


def test_ownership_is_the_same_whatever_the_order_ecs_answered_in() -> None:
    tds = [
        task_definition("a", 1, {"xds.service": "a"}),
        task_definition("b", 1, {"xds.service": "b"}),
        task_definition("c", 1, {"xds.service": "a", "xds.protocol": "http2"}),
        task_definition("d", 1, {"xds.service": "d", "xds.route.hosts": "x.example.com", "xds.route.priority": "9"}),
    ]
    tasks = [task(td, td.family, f"127.0.0.{i}", started_at=float(10 - i)) for i, td in enumerate(tds, 1)]
    meshes = {
        build_mesh([cluster_state(list(order_tasks), list(order_tds))])
        for order_tasks in itertools.permutations(tasks)
        for order_tds in (tds, list(reversed(tds)))
    }
    assert len(meshes) == 1
    (mesh,) = meshes
    # c's tasks started before a's: family c owns service a; b (started before a too) owns * prefix=/.
    assert mesh.service("a").declared_by == "c:1"  # type: ignore[union-attr]
    assert {p.kind for p in mesh.problems} == {ProblemKind.FAMILY_CONFLICT, ProblemKind.ROUTE_CONFLICT}


def test_one_container_declaring_one_service_on_two_ports_is_an_error() -> None:
    td = task_definition(
        "orders", 1, {"xds.service": "orders", "xds.port": "50051", "xds.1.service": "orders", "xds.1.port": "8080"}, ports=(50051, 8080)
    )
    mesh = build_mesh([cluster_state([task(td, "t", "127.0.0.1")], [td])])
    assert mesh.services == ()
    assert sorted((p.label, p.kind) for p in mesh.problems) == [
        ("xds.1.service", ProblemKind.DUPLICATE_DECLARATION),
        ("xds.service", ProblemKind.DUPLICATE_DECLARATION),
    ]
    assert "also declares service 'orders' with xds.1.service (port 8080)" in mesh.problems[0].message + mesh.problems[1].message


def test_two_containers_of_one_task_definition_declaring_one_service_is_an_error() -> None:
    other = ContainerDefinition("other", {"xds.service": "orders"}, (PortMapping(9000),))
    td = task_definition("orders", 1, {"xds.service": "orders"}, extra_containers=(other,))
    mesh = build_mesh([cluster_state([task(td, "t", "127.0.0.1")], [td])])
    assert mesh.services == ()
    assert {(p.container, p.kind) for p in mesh.problems} == {("app", ProblemKind.DUPLICATE_DECLARATION), ("other", ProblemKind.DUPLICATE_DECLARATION)}
