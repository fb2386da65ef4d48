"""Cluster views -> Mesh: services, endpoints, their health, and problems as data."""

from __future__ import annotations

import dataclasses

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.mesh import EndpointHealth, ProblemKind, Protocol, RouteMatch, ServiceProblem

from .builders import cluster_state, task, task_definition


def _endpoints(mesh, name: str) -> list[tuple[str, int, str, EndpointHealth]]:
    service = mesh.service(name)
    assert service is not None, f"service {name!r} missing; problems: {mesh.problems}"
    return [(e.address, e.port, e.task_id, e.health) for e in service.endpoints]


def test_a_service_with_its_endpoints() -> None:
    td = task_definition("orders", 7, {"xds.service": "orders", "xds.route.prefix": "/orders.Orders/"})
    state = cluster_state([task(td, "t2", "127.0.0.2"), task(td, "t1", "127.0.0.1")], [td])

    mesh = build_mesh([state])

    assert [s.name for s in mesh.services] == ["orders"]
    service = mesh.services[0]
    assert (service.protocol, service.container_port, service.declared_by) == (Protocol.GRPC, 50051, "orders:7")
    assert service.route == RouteMatch(("*",), "/orders.Orders/")
    assert _endpoints(mesh, "orders") == [
        ("127.0.0.1", 50051, "t1", EndpointHealth.HEALTHY),
        ("127.0.0.2", 50051, "t2", EndpointHealth.HEALTHY),
    ]
    assert service.endpoints[0].task_definition == "orders:7"
    assert service.endpoints[0].cluster == "prod"
    assert mesh.problems == ()


def test_endpoints_use_the_address_and_port_discovery_found() -> None:
    td = task_definition("legacy", 1, {"xds.service": "legacy"}, network_mode="bridge")
    state = cluster_state([task(td, "t1", "127.1.0.10", port=32768), task(td, "t2", "127.1.0.10", port=32771)], [td])

    assert [(a, p) for a, p, _, _ in _endpoints(build_mesh([state]), "legacy")] == [("127.1.0.10", 32768), ("127.1.0.10", 32771)]


def test_a_task_without_a_reachable_port_has_no_endpoint() -> None:
    td = task_definition("orders", 1, {"xds.service": "orders"})
    unreachable = dataclasses.replace(task(td, "t2", "127.0.0.2"), endpoints=())
    mesh = build_mesh([cluster_state([task(td, "t1", "127.0.0.1"), unreachable], [td])])
    assert [tid for _, _, tid, _ in _endpoints(mesh, "orders")] == ["t1"]


def test_port_defaults_to_the_only_mapping_and_errors_when_several() -> None:
    one = task_definition("one", 1, {"xds.service": "one"}, ports=(8443,))
    several = task_definition("several", 4, {"xds.service": "several"}, ports=(50051, 9090))
    mesh = build_mesh([cluster_state([task(one, "a", "127.0.0.1"), task(several, "b", "127.0.0.2")], [one, several])])

    assert [s.name for s in mesh.services] == ["one"]
    assert mesh.service("one").container_port == 8443  # type: ignore[union-attr]
    assert mesh.problems == (
        ServiceProblem(
            service="several",
            task_definition="several:4",
            container="app",
            label="xds.service",
            value="several",
            severity="error",
            kind=ProblemKind.MISSING_LABEL,
            message=(
                "task definition several:4, container 'app': label xds.service='several': container 'app' maps "
                "50051, 9090: set xds.port to the containerPort that serves 'several'"
            ),
        ),
    )


def test_a_malformed_service_does_not_affect_another_in_the_same_cluster() -> None:
    bad = task_definition("payments", 3, {"xds.service": "payments", "xds.protocol": "thrift"})
    good = task_definition("orders", 1, {"xds.service": "orders"})
    mesh = build_mesh([cluster_state([task(bad, "b1", "127.0.0.9"), task(good, "g1", "127.0.0.1")], [bad, good])])

    assert [s.name for s in mesh.services] == ["orders"]
    assert _endpoints(mesh, "orders") == [("127.0.0.1", 50051, "g1", EndpointHealth.HEALTHY)]
    assert [(p.service, p.task_definition, p.label, p.value, p.severity, p.message) for p in mesh.problems] == [
        (
            "payments",
            "payments:3",
            "xds.protocol",
            "thrift",
            "error",
            "task definition payments:3, container 'app': label xds.protocol='thrift': expected one of grpc, http2, http1, tcp",
        )
    ]


def test_a_malformed_container_does_not_affect_another_container_of_the_task() -> None:
    sidecar = ContainerDefinition("admin", {"xds.service": "orders-admin", "xds.port": "99999"}, (PortMapping(9901),))
    td = task_definition("orders", 2, {"xds.service": "orders"}, extra_containers=(sidecar,))
    mesh = build_mesh([cluster_state([task(td, "t1", "127.0.0.1")], [td])])

    assert [s.name for s in mesh.services] == ["orders"]
    assert [p.message for p in mesh.problems] == [
        "task definition orders:2, container 'admin': label xds.port='99999': expected an integer 1-65535, "
        "a containerPort of this container's portMappings"
    ]


def test_an_unknown_label_is_a_warning_and_the_service_is_still_served() -> None:
    td = task_definition("orders", 5, {"xds.service": "orders", "xds.retries": "3"})
    mesh = build_mesh([cluster_state([task(td, "t1", "127.0.0.1")], [td])])

    assert _endpoints(mesh, "orders") == [("127.0.0.1", 50051, "t1", EndpointHealth.HEALTHY)]
    assert mesh.problems == (
        ServiceProblem(
            service="orders",
            task_definition="orders:5",
            container="app",
            label="xds.retries",
            value="3",
            severity="warning",
            kind=ProblemKind.UNKNOWN_LABEL,
            message=(
                "task definition orders:5, container 'app': label xds.retries='3': unknown label, ignored "
                "(docs/labels.md lists the labels we read)"
            ),
        ),
    )


def test_a_custom_prefix() -> None:
    td = task_definition("orders", 1, {"mesh/service": "orders", "mesh/protocol": "http1", "xds.service": "ignored"})
    mesh = build_mesh([cluster_state([task(td, "t1", "127.0.0.1")], [td])], prefix="mesh/")

    assert [(s.name, s.protocol) for s in mesh.services] == [("orders", Protocol.HTTP1)]
    assert mesh.problems == ()


def test_during_a_rollout_the_newest_revision_wins_and_both_serve() -> None:
    old = task_definition("orders", 6, {"xds.service": "orders", "xds.route.prefix": "/v1/"})
    new = task_definition("orders", 7, {"xds.service": "orders", "xds.route.prefix": "/v2/"})
    state = cluster_state([task(new, "new1", "127.0.0.2"), task(old, "old1", "127.0.0.1")], [old, new])

    mesh = build_mesh([state])

    service = mesh.service("orders")
    assert service is not None
    assert (service.route.path_prefix, service.declared_by) == ("/v2/", "orders:7")
    assert [(tid, e_td) for tid, e_td in ((e.task_id, e.task_definition) for e in service.endpoints)] == [
        ("old1", "orders:6"),
        ("new1", "orders:7"),
    ]
    assert [(p.severity, p.kind, p.task_definition, p.label, p.message) for p in mesh.problems] == [
        (
            "warning",
            ProblemKind.REVISION_MISMATCH,
            "orders:6",
            "xds.service",
            "task definition orders:6, container 'app': service 'orders' is declared with a different route than in "
            "orders:7; the highest revision's settings are used",
        )
    ]


def test_a_rollout_with_equal_settings_is_silent() -> None:
    old = task_definition("orders", 6, {"xds.service": "orders"})
    new = task_definition("orders", 7, {"xds.service": "orders"})
    mesh = build_mesh([cluster_state([task(old, "a", "127.0.0.1"), task(new, "b", "127.0.0.2")], [old, new])])
    assert mesh.problems == () and len(mesh.services[0].endpoints) == 2


def test_a_route_conflict_keeps_the_established_service() -> None:
    # alpha's tasks started first: it keeps * prefix=/, though beta sorts after it by name and before it by ARN order.
    beta = task_definition("beta", 2, {"xds.service": "beta", "xds.route.hosts": "shop.example.com,*"})
    alpha = task_definition("alpha", 1, {"xds.service": "alpha"})
    tasks = [task(beta, "b", "127.0.0.2", started_at=200.0), task(alpha, "a", "127.0.0.1", started_at=100.0)]
    mesh = build_mesh([cluster_state(tasks, [beta, alpha])])

    assert [s.name for s in mesh.services] == ["alpha"]
    assert mesh.problems == (
        ServiceProblem(
            service="beta",
            task_definition="beta:2",
            container="app",
            label="xds.route.hosts",
            kind=ProblemKind.ROUTE_CONFLICT,
            message=(
                "task definition beta:2, container 'app': service 'beta' is refused: its route on host * (prefix=/) has the "
                "same match as the route of service 'alpha' (task definition alpha:1, prefix=/), which served it first; "
                "give one of them another xds.route.hosts, xds.route.prefix, xds.route.method or xds.route.headers"
            ),
        ),
    )


def test_the_established_service_is_the_one_whose_tasks_started_first_not_the_first_by_name() -> None:
    alpha = task_definition("alpha", 1, {"xds.service": "alpha"})
    beta = task_definition("beta", 1, {"xds.service": "beta"})
    tasks = [task(alpha, "a", "127.0.0.1", started_at=300.0), task(beta, "b", "127.0.0.2", started_at=100.0)]

    mesh = build_mesh([cluster_state(tasks, [alpha, beta])])

    assert [s.name for s in mesh.services] == ["beta"]
    assert [(p.service, p.kind) for p in mesh.problems] == [("alpha", ProblemKind.ROUTE_CONFLICT)]
    # A task that has not started yet does not make its service established.
    pending = task(beta, "b", "127.0.0.2", last_status="PENDING")
    mesh = build_mesh([cluster_state([task(alpha, "a", "127.0.0.1", started_at=300.0), pending], [alpha, beta])])
    assert [s.name for s in mesh.services] == ["alpha"]


def test_a_route_conflict_names_the_custom_prefix_labels() -> None:
    a = task_definition("a", 1, {"mesh/service": "a"})
    b = task_definition("b", 1, {"mesh/service": "b"})
    mesh = build_mesh([cluster_state([task(a, "a", "127.0.0.1"), task(b, "b", "127.0.0.2")], [a, b])], prefix="mesh/")
    assert mesh.problems[0].label == "mesh/service"  # the only label b set
    assert mesh.problems[0].message.endswith(
        "give one of them another mesh/route.hosts, mesh/route.prefix, mesh/route.method or mesh/route.headers"
    )


def test_the_same_prefix_on_different_hosts_is_no_conflict() -> None:
    a = task_definition("a", 1, {"xds.service": "a", "xds.route.hosts": "a.example.com"})
    b = task_definition("b", 1, {"xds.service": "b", "xds.route.hosts": "b.example.com"})
    mesh = build_mesh([cluster_state([task(a, "a", "127.0.0.1"), task(b, "b", "127.0.0.2")], [a, b])])
    assert [s.name for s in mesh.services] == ["a", "b"] and mesh.problems == ()


def test_services_across_clusters_merge() -> None:
    td = task_definition("orders", 1, {"xds.service": "orders"})
    mesh = build_mesh(
        [
            cluster_state([task(td, "p1", "127.0.0.1", cluster="prod")], [td], cluster="prod"),
            cluster_state([task(td, "s1", "127.0.1.1", cluster="prod-b")], [td], cluster="prod-b"),
        ]
    )
    assert [(e.cluster, e.address) for e in mesh.services[0].endpoints] == [("prod", "127.0.0.1"), ("prod-b", "127.0.1.1")]


def test_equal_views_build_equal_meshes() -> None:
    def views():
        a = task_definition("a", 1, {"xds.service": "a", "xds.bogus": "1"})
        b = task_definition("b", 1, {"xds.service": "b", "xds.route.prefix": "/b/"})
        return [cluster_state([task(b, "b", "127.0.0.2"), task(a, "a", "127.0.0.1")], [b, a])]

    assert build_mesh(views()) == build_mesh(list(reversed(views())))


