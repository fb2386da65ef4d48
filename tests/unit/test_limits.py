"""Bounded output: hosts, route entries and bytes of edge configuration per service."""

from __future__ import annotations

from controlplane.model.build import build_mesh
from controlplane.model.limits import Limits, route_bytes
from controlplane.model.mesh import ProblemKind
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import translate
from controlplane.xds.types import TypeUrl

from .builders import cluster_state, task, task_definition


def test_a_service_naming_more_hosts_than_allowed_is_refused() -> None:
    hosts = ",".join(f"h{i}.example.com" for i in range(33))
    td = task_definition("many", 1, {"xds.service": "many", "xds.route.hosts": hosts})
    ok = task_definition("ok", 1, {"xds.service": "ok", "xds.route.hosts": "ok.example.com"})

    mesh = build_mesh([cluster_state([task(td, "m", "127.0.0.1"), task(ok, "o", "127.0.0.2")], [td, ok])])

    assert [s.name for s in mesh.services] == ["ok"]
    (problem,) = mesh.problems
    assert (problem.service, problem.kind, problem.label) == ("many", ProblemKind.LIMIT_EXCEEDED, "xds.route.hosts")
    assert "it would add 33 hosts, more than the 32 allowed per service" in problem.message


def test_a_wildcard_newcomer_is_charged_for_its_copies_into_established_hosts() -> None:
    named = [
        task_definition(f"s{i}", 1, {"xds.service": f"s{i}", "xds.route.hosts": f"s{i}.example.com", "xds.route.prefix": f"/s{i}/"})
        for i in range(5)
    ]
    wild = task_definition("wild", 1, {"xds.service": "wild"})
    tasks = [task(td, td.family, f"127.0.0.{i + 1}", started_at=float(i)) for i, td in enumerate(named)]
    tasks.append(task(wild, "w", "127.0.1.1", started_at=100.0))

    # 1 own route + 5 copies into the established hosts: 6 entries.
    mesh = build_mesh([cluster_state(tasks, [*named, wild])], limits=Limits(max_routes_per_service=5))
    assert mesh.service("wild") is None
    assert [(p.service, p.kind) for p in mesh.problems] == [("wild", ProblemKind.LIMIT_EXCEEDED)]
    assert "6 route entries at the edge" in mesh.problems[0].message

    # A copy that could never match is neither sent nor charged: with "/" of their own, the hosts
    # leave the wildcard no call.
    catch_all = [task_definition(f"s{i}", 1, {"xds.service": f"s{i}", "xds.route.hosts": f"s{i}.example.com"}) for i in range(5)]
    mesh = build_mesh([cluster_state(tasks, [*catch_all, wild])], limits=Limits(max_routes_per_service=5))
    assert mesh.service("wild") is not None and mesh.problems == ()
    assert [vh.routes for vh in mesh.virtual_hosts if vh.host != "*"] == [(f"s{i}",) for i in range(5)]

    # Established first, the wildcard is never charged for the hosts that come after it: they are.
    tasks[-1] = task(wild, "w", "127.0.1.1", started_at=-1.0)
    mesh = build_mesh([cluster_state(tasks, [*named, wild])], limits=Limits(max_routes_per_service=5))
    assert mesh.service("wild") is not None and mesh.problems == ()
    assert all(vh.routes[-1] == "wild" for vh in mesh.virtual_hosts)


def test_the_whole_edge_is_bounded_and_the_newest_service_is_the_one_refused() -> None:
    tds = [task_definition(f"s{i}", 1, {"xds.service": f"s{i}", "xds.route.hosts": f"s{i}.example.com"}) for i in range(4)]
    tasks = [task(td, td.family, f"127.0.0.{i + 1}", started_at=float(i)) for i, td in enumerate(tds)]
    mesh = build_mesh([cluster_state(tasks, tds)], limits=Limits(max_edge_routes=3))
    assert [s.name for s in mesh.services] == ["s0", "s1", "s2"]
    assert [(p.service, p.kind) for p in mesh.problems] == [("s3", ProblemKind.LIMIT_EXCEEDED)]
    assert "1 route entries to the 3 that established services hold at the edge, more than the 3 allowed in all" in mesh.problems[0].message


def test_bytes_of_route_configuration_are_bounded() -> None:
    headers = ",".join(f"x-h{i}={'v' * 200}" for i in range(16))
    hosts = ",".join(f"h{i}.example.com" for i in range(32))
    td = task_definition("big", 1, {"xds.service": "big", "xds.route.hosts": hosts, "xds.route.headers": headers})

    mesh = build_mesh([cluster_state([task(td, "b", "127.0.0.1")], [td])], limits=Limits(max_config_bytes_per_service=64 * 1024))

    assert mesh.services == ()
    assert "bytes of route configuration, more than the 65536 allowed per service" in mesh.problems[0].message


def test_the_byte_estimate_is_an_upper_bound_of_the_real_route() -> None:
    labels = {
        "xds.service": "svc", "xds.route.hosts": "a.example.com,b.example.com", "xds.route.headers": "x-a=1,x-b",
        "xds.lb.policy": "maglev", "xds.lb.hash-header": "x-user", "xds.ratelimit.average": "5",
        "xds.retry.on": "unavailable,connect-failure,5xx", "xds.retry.per-try-timeout": "1s", "xds.timeout.idle": "5m",
        "xds.timeout.max-stream-duration": "1h", "xds.route.weights": "svc:1,other:2",
    }
    td = task_definition("svc", 1, labels)
    other = task_definition("other", 1, {"xds.service": "other", "xds.route.enabled": "false"})
    mesh = build_mesh([cluster_state([task(td, "s", "127.0.0.1"), task(other, "o", "127.0.0.2")], [td, other])])
    service = mesh.service("svc")
    assert service is not None
    (config,) = translate(mesh, EdgeRole()).of(TypeUrl.ROUTE).values()
    real = config.ByteSize()  # type: ignore[attr-defined]
    estimate = 2 * route_bytes(service)
    assert real <= estimate < 3 * real
