"""The routing features in the whole model: the default host rule under the ownership rules, route
conflicts and shadowing with the new matches, mirrors naming services nobody serves."""

from __future__ import annotations

import pytest

from controlplane.model.build import build_mesh
from controlplane.model.host_rule import DefaultHostRule, normalized
from controlplane.model.matching import condition_covers
from controlplane.model.mesh import HeaderMatch, MatchKind, ProblemKind, QueryMatch
from unit.builders import cluster_state, task, task_definition

RULE = DefaultHostRule.parse("{service}.example.com")


def _mesh(*declared: tuple[str, dict[str, str]], rule: DefaultHostRule | None = None, clusters: tuple[str, ...] = ("prod",)):  # type: ignore[no-untyped-def]
    states = []
    for n, cluster in enumerate(clusters):
        tds = [task_definition(family, 1, labels) for family, labels in declared]
        tasks = [task(td, f"{td.family}-{n}", f"127.0.{n + 1}.{i + 1}", cluster=cluster, started_at=float(i)) for i, td in enumerate(tds)]
        states.append(cluster_state(tasks, tds, cluster=cluster))
    return build_mesh(states, host_rule=rule)


def test_without_the_rule_two_unlabelled_services_clash_on_the_catch_all() -> None:
    mesh = _mesh(("orders", {"xds.service": "orders"}), ("users", {"xds.service": "users"}))
    assert [s.name for s in mesh.services] == ["orders"]
    assert [p.kind for p in mesh.problems] == [ProblemKind.ROUTE_CONFLICT]


def test_the_rule_gives_each_service_without_hosts_its_own() -> None:
    mesh = _mesh(
        ("orders", {"xds.service": "orders"}),
        ("users", {"xds.service": "users"}),
        ("web", {"xds.service": "web", "xds.route.hosts": "www.example.com"}),
        ("legacy", {"xds.service": "legacy", "xds.route.hosts": "*"}),
        ("hidden", {"xds.service": "hidden", "xds.route.enabled": "false"}),
        rule=RULE,
    )
    assert mesh.problems == ()
    assert {s.name: s.route.hosts for s in mesh.services} == {
        "hidden": ("*",), "legacy": ("*",), "orders": ("orders.example.com",), "users": ("users.example.com",), "web": ("www.example.com",),
    }
    # Each named host's own "/" takes every call: the catch-all is no fallback there.
    assert [(v.host, v.routes) for v in mesh.virtual_hosts] == [
        ("*", ("legacy",)), ("orders.example.com", ("orders",)), ("users.example.com", ("users",)), ("www.example.com", ("web",)),
    ]


def test_family_and_cluster_placeholders_one_host_per_cluster() -> None:
    rule = DefaultHostRule.parse("{service}-{family}.{cluster}.example.com")
    mesh = _mesh(("Orders_API", {"xds.service": "orders"}), rule=rule, clusters=("prod", "Eu_West"))
    (orders,) = mesh.services
    assert orders.route.hosts == ("orders-orders-api.eu-west.example.com", "orders-orders-api.prod.example.com")
    assert normalized("--A__b--") == "a-b"


def test_ownership_rules_still_apply_to_hosts_from_the_rule() -> None:
    # {family} alone: two services of one family would share a host and a match: the established one keeps it.
    rule = DefaultHostRule.parse("{family}.example.com")
    td = task_definition("shop", 1, {"xds.service": "cart", "xds.1.service": "pay", "xds.port": "1", "xds.1.port": "2"}, ports=(1, 2))
    mesh = build_mesh([cluster_state([task(td, "s", "127.0.0.1")], [td])], host_rule=rule)
    assert [s.name for s in mesh.services] == ["cart"]
    (problem,) = mesh.problems
    assert problem.kind is ProblemKind.ROUTE_CONFLICT and "on host shop.example.com" in problem.message


def test_a_rule_that_gives_no_host_refuses_only_that_service() -> None:
    rule = DefaultHostRule.parse("{family}.example.com")
    mesh = _mesh(("x" * 70, {"xds.service": "long"}), ("ok", {"xds.service": "ok"}), rule=rule)
    assert [s.name for s in mesh.services] == ["ok"]
    (problem,) = mesh.problems
    assert problem.kind is ProblemKind.MISSING_LABEL and problem.label == "xds.service"
    assert "has a label of 70 characters (at most 63)): set xds.route.hosts" in problem.message


@pytest.mark.parametrize(
    "template",
    ["", "example.com", "{nope}.example.com", "{service!r}.x", "*.{service}.x", "{service}..x", "{service}.Ex_ample"],
)
def test_bad_templates_are_refused_with_a_reason(template: str) -> None:
    with pytest.raises(ValueError):
        DefaultHostRule.parse(template)


def test_a_higher_priority_route_covering_an_established_one_is_refused_with_the_new_matches() -> None:
    base = {"xds.route.hosts": "api.example.com", "xds.route.prefix": "/x/"}
    established = ("tenants", {**base, "xds.service": "tenants", "xds.route.header.x-tenant": "exact:acme-1"})
    grabber = ("grabber", {**base, "xds.service": "grabber", "xds.route.header.x-tenant": "prefix:acme-", "xds.route.priority": "10"})
    mesh = _mesh(established, grabber)
    assert [s.name for s in mesh.services] == ["tenants"]
    assert mesh.problems[0].kind is ProblemKind.ROUTE_CONFLICT and "x-tenant:prefix:acme-" in mesh.problems[0].message


def test_a_route_with_query_matches_is_no_catch_all_for_fallbacks() -> None:
    named = ("search", {"xds.service": "search", "xds.route.hosts": "a.example.com", "xds.route.query.v": "exact:2"})
    mesh = _mesh(named, ("wild", {"xds.service": "wild"}))
    assert [(v.host, v.routes) for v in mesh.virtual_hosts] == [("*", ("wild",)), ("a.example.com", ("search", "wild"))]


def test_different_query_matches_do_not_clash() -> None:
    base = {"xds.route.prefix": "/search"}
    mesh = _mesh(("v1", {**base, "xds.service": "v1", "xds.route.query.v": "exact:1"}), ("v2", {**base, "xds.service": "v2", "xds.route.query.v": "exact:2"}))
    assert [s.name for s in mesh.services] == ["v1", "v2"] and mesh.problems == ()


@pytest.mark.parametrize(
    ("first", "second", "covers"),
    [
        (HeaderMatch("h"), HeaderMatch("h", "a"), True),
        (HeaderMatch("h"), HeaderMatch("h", None, invert=True), False),
        (HeaderMatch("h", None, invert=True), HeaderMatch("h", None, invert=True), True),
        (HeaderMatch("h", "ab", MatchKind.PREFIX), HeaderMatch("h", "abc", MatchKind.PREFIX), True),
        (HeaderMatch("h", "abc", MatchKind.PREFIX), HeaderMatch("h", "ab", MatchKind.PREFIX), False),
        (HeaderMatch("h", "-eu", MatchKind.SUFFIX), HeaderMatch("h", "x-eu"), True),
        (HeaderMatch("h", "b", MatchKind.CONTAINS), HeaderMatch("h", "abc", MatchKind.PREFIX), True),
        (HeaderMatch("h", "a[0-9]+", MatchKind.REGEX), HeaderMatch("h", "a42"), True),
        (HeaderMatch("h", "a[0-9]+", MatchKind.REGEX), HeaderMatch("h", "xa42"), False),
        (HeaderMatch("h", "prod", invert=True), HeaderMatch("h", "dev"), True),
        (HeaderMatch("h", "prod", invert=True), HeaderMatch("h", "prod"), False),
        (HeaderMatch("h", "a", MatchKind.PREFIX, invert=True), HeaderMatch("h", "ab", MatchKind.PREFIX, invert=True), False),
        (HeaderMatch("h", "ab", MatchKind.PREFIX, invert=True), HeaderMatch("h", "a", MatchKind.PREFIX, invert=True), True),
        (HeaderMatch("h", "a"), HeaderMatch("h"), False),
        (QueryMatch("q"), QueryMatch("q", "1"), True),
    ],
)
def test_which_condition_covers_which(first: HeaderMatch, second: HeaderMatch, covers: bool) -> None:
    assert condition_covers(first, second) is covers


def test_a_mirror_naming_a_service_nobody_serves_is_dropped_with_a_warning() -> None:
    mesh = _mesh(("orders", {"xds.service": "orders", "xds.mirror.service": "ghost"}))
    (orders,) = mesh.services
    assert orders.policy.mirror is None
    (problem,) = mesh.problems
    assert (problem.kind, problem.severity, problem.label) == (ProblemKind.UNKNOWN_TARGET, "warning", "xds.mirror.service")
    served = _mesh(("orders", {"xds.service": "orders", "xds.mirror.service": "next"}), ("next", {"xds.service": "next", "xds.route.enabled": "false"}))
    assert served.service("orders").policy.mirror is not None and served.problems == ()  # type: ignore[union-attr]
