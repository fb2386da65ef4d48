"""The escape hatch: RFC 7386 merge patches through protobuf's JSON mapping, the checks that refuse a
bad patch (unknown field, wrong type, rename, Envoy's validate rules, inside Anys too), the model
refusing only the patched service, and the edge listener patch setting (docs/labels.md, "Escape hatch")."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controlplane.model.build import build_mesh
from controlplane.model.mesh import ProblemKind, Protocol, Service
from controlplane.proxy.roles import EdgeRole, SidecarRole
from controlplane.settings import Settings
from controlplane.translate import translate
from controlplane.translate.cluster import cluster
from controlplane.translate.edge_options import EdgeOptions
from controlplane.secrets.certificate import Certificate, CertificateSet
from controlplane.translate.patch import PatchError, check_listener_patch, check_service, merge_patch, patched, patched_or_kept
from controlplane.xds.types import TypeUrl
from unit.builders import cluster_state, task, task_definition


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386(target: object, patch: object, result: object) -> None:
    assert merge_patch(target, patch) == result


def test_a_patch_changes_the_fields_it_names_and_keeps_the_rest() -> None:
    original = cluster("orders")
    changed = patched(original, '{"connect_timeout": "0.25s", "perConnectionBufferLimitBytes": 65536, "lb_policy": "LEAST_REQUEST"}')
    assert changed.connect_timeout.ToMilliseconds() == 250 and changed.per_connection_buffer_limit_bytes.value == 65536
    assert changed.lb_policy == changed.LEAST_REQUEST and changed.eds_cluster_config == original.eds_cluster_config
    assert original.connect_timeout.ToMilliseconds() == 2000  # never mutated


@pytest.mark.parametrize(
    ("patch", "says"),
    [
        ('{"conect_timeout": "1s"}', 'has no field named "conect_timeout" at "Cluster".'),
        ('{"connect_timeout": 5}', "Duration JSON value not a string: 5 at Cluster.connect_timeout."),
        ('{"lb_policy": "NOPE"}', "Invalid enum value NOPE"),
        ('{"name": "other"}', "it renames the Cluster 'orders'"),
        ('{"connect_timeout": "-1s"}', "Envoy would reject the result: Cluster.connect_timeout: -1s is not greater than 0s"),
        ('{"eds_cluster_config": null, "type": "STATIC", "load_assignment": {}}', "Cluster.load_assignment.cluster_name: needs at least 1 characters"),
        (
            '{"typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": '
            '{"explicit_http_config": {"http2_protocol_options": {"max_concurrent_streams": 0}}}}}',
            "http2_protocol_options.max_concurrent_streams: 0 is not at least 1",
        ),
        ("[1]", "a merge patch is a JSON object"),
    ],
)
def test_a_bad_patch_says_what_is_wrong(patch: str, says: str) -> None:
    base = cluster("orders", protocol=Protocol.GRPC)
    with pytest.raises(PatchError) as raised:
        patched(base, patch)
    assert says in str(raised.value) and "Available Fields" not in str(raised.value)
    assert patched_or_kept(base, patch) is base


def _mesh(orders_labels: dict[str, str]):  # type: ignore[no-untyped-def]
    tds = [
        task_definition("orders", 1, {"xds.service": "orders", "xds.route.prefix": "/orders/", **orders_labels}),
        task_definition("users", 1, {"xds.service": "users", "xds.route.prefix": "/users/", "xds.upstreams": "orders"}),
    ]
    tasks = [task(td, f"{td.family}-1", f"127.0.1.{i + 1}", started_at=float(i)) for i, td in enumerate(tds)]
    return build_mesh([cluster_state(tasks, tds)], resource_check=check_service)


def test_patched_resources_reach_the_edge_and_sidecars() -> None:
    mesh = _mesh({"xds.patch.cluster": '{"connect_timeout": "0.5s"}', "xds.patch.route": '{"route": {"timeout": "3s"}}'})
    assert mesh.problems == ()
    for role in (EdgeRole("127.0.0.1", 10000), SidecarRole(service="users")):
        resources = translate(mesh, role)
        assert resources.of(TypeUrl.CLUSTER)["orders"].connect_timeout.ToMilliseconds() == 500
        routes = [r for config in resources.of(TypeUrl.ROUTE).values() for v in config.virtual_hosts for r in v.routes if r.name == "orders"]
        assert routes and all(r.route.timeout.seconds == 3 for r in routes)


@pytest.mark.parametrize(
    ("labels", "label", "says"),
    [
        ({"xds.patch.cluster": '{"conect_timeout": "1s"}'}, "xds.patch.cluster", 'no field named "conect_timeout"'),
        ({"xds.patch.route": '{"match": {"prefix": null}}'}, "xds.patch.route", "Route.match: one of prefix, path"),
    ],
)
def test_a_bad_patch_refuses_only_its_service_with_a_precise_problem(labels: dict[str, str], label: str, says: str) -> None:
    mesh = _mesh(labels)
    assert [s.name for s in mesh.services] == ["users"]
    (problem,) = [p for p in mesh.problems if p.severity == "error"]
    assert (problem.service, problem.label, problem.kind, problem.severity) == ("orders", label, ProblemKind.INVALID_VALUE, "error")
    assert says in problem.message and "task definition orders:1" in problem.message


def test_a_malformed_patch_label_is_a_label_problem() -> None:
    mesh = _mesh({"xds.patch.route": '{"route": '})
    (problem,) = [p for p in mesh.problems if p.severity == "error"]
    assert problem.label == "xds.patch.route" and "not JSON" in problem.message


def test_the_edge_listener_patch_is_checked_and_applied(tmp_path: Path) -> None:
    patch = check_listener_patch('{"per_connection_buffer_limit_bytes": 65536}')
    edge = translate(_mesh({}), EdgeRole("127.0.0.1", 10000), edge=EdgeOptions(listener_patch=patch))
    assert edge.of(TypeUrl.LISTENER)["edge"].per_connection_buffer_limit_bytes.value == 65536
    # Checked against the TLS shape too (certificates may arrive later): applied there as well.
    certificate = Certificate(name="www", chain_pem="", key_pem="", hosts=("www.example.com",), not_after=0.0, source="test")
    tls = EdgeOptions(certificates=CertificateSet(certificates=(certificate,)), listener_patch=patch)
    tls_listener = translate(_mesh({}), EdgeRole("127.0.0.1", 10000), edge=tls).of(TypeUrl.LISTENER)["edge"]
    assert len(tls_listener.listener_filters) == 1 and tls_listener.per_connection_buffer_limit_bytes.value == 65536

    with pytest.raises(ValueError, match='no field named "per_connection_buffer_limit"'):
        check_listener_patch('{"per_connection_buffer_limit": 1}')
    bad = tmp_path / "bad.json"
    bad.write_text('{"filter_chains": [{"filters": [{"name": ""}]}]}')
    with pytest.raises(ValidationError, match=r"on the plaintext edge listener: .*Listener.filter_chains\[0\].filters\[0\].name: needs at least 1 characters"):
        Settings(edge_listener_patch=bad)
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(edge_listener_patch=tmp_path / "missing.json")


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the services patch.check_service is called for, from now on."""
    from controlplane.translate import patch

    calls: list[str] = []
    real = patch.check_service

    def counted(service: Service) -> tuple[str, str] | None:
        calls.append(service.name)
        return real(service)

    monkeypatch.setattr(patch, "check_service", counted)
    return calls


def test_the_memoised_check_runs_once_per_service_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane.translate import TranslationMemo, patch

    calls = _count_checks(monkeypatch)
    memo = TranslationMemo()
    check = patch.memoised_check(memo)
    tds = [task_definition(name, 1, {"xds.service": name, "xds.route.prefix": f"/{name}/", **labels}) for name, labels in (
        ("orders", {"xds.patch.cluster": '{"connect_timeout": "0.5s"}'}), ("broken", {"xds.patch.route": '{"nope": 1}'}), ("plain", {}),
    )]
    tasks = [task(td, f"{td.family}-1", f"127.0.1.{i + 1}") for i, td in enumerate(tds)]
    for _ in range(3):
        mesh = build_mesh([cluster_state(tasks, tds)], resource_check=check)
        translate(mesh, EdgeRole("127.0.0.1", 10000), memo)
        assert [s.name for s in mesh.services] == ["orders", "plain"]
        assert [p.label for p in mesh.problems] == ["xds.patch.route"]
    assert sorted(calls) == ["broken", "orders"]  # once each; never for the unpatched service


def test_the_memoised_check_keeps_its_results_while_the_cache_lets_go_of_what_no_role_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control plane's memo drops what no live role holds after every change (memo.settle); the
    checks a build used are held by the check itself (hold), and released once no build uses them."""
    from controlplane.translate import TranslationMemo, patch

    calls = _count_checks(monkeypatch)
    memo = TranslationMemo()
    check = patch.memoised_check(memo)
    tds = [task_definition(name, 1, {"xds.service": name, "xds.route.prefix": f"/{name}/", "xds.patch.cluster": '{"connect_timeout": "0.5s"}'}) for name in ("orders", "users")]
    tasks = [task(td, f"{td.family}-1", f"127.0.1.{i + 1}") for i, td in enumerate(tds)]
    for _ in range(3):
        build_mesh([cluster_state(tasks, tds)], resource_check=check)
        check.hold()
        memo.settle()
    assert sorted(calls) == ["orders", "users"]
    held = memo.size_bytes()
    build_mesh([cluster_state(tasks[:1], tds[:1])], resource_check=check)  # users is gone
    check.hold()
    memo.settle()
    assert memo.size_bytes() < held and len(memo) == 1



def test_a_partial_build_keeps_the_checks_of_the_services_it_did_not_assemble() -> None:
    """A change that assembles one service again (MeshUpdate.assembled False) checks only that one:
    the results of the others stay held; a full build lets go of those it did not use."""
    import dataclasses

    from controlplane.translate import patch
    from controlplane.translate.memo import TranslationMemo

    memo = TranslationMemo()
    check = patch.memoised_check(memo)
    tds = [task_definition(name, 1, {"xds.service": name, "xds.route.prefix": f"/{name}/", "xds.patch.cluster": '{"connect_timeout": "0.5s"}'}) for name in ("orders", "users")]
    orders, users = build_mesh([cluster_state([task(td, f"{td.family}-1", f"127.0.1.{i + 1}") for i, td in enumerate(tds)], tds)]).services
    check(orders), check(users)
    check.hold()
    memo.settle()
    assert len(memo) == 2
    check(dataclasses.replace(orders, declared_by="orders:2"))  # orders alone assembled again
    check.hold(partial=True)
    memo.settle()
    assert len(memo) == 2  # users' result is kept
    check(orders)  # a full build without users
    check.hold()
    memo.settle()
    assert len(memo) == 1
