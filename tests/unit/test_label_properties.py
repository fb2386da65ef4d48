"""Property tests (hypothesis) of the whole label surface, with the strategies of bench/label_fuzz.py
(which runs many more examples): any string in any label, random label sets into the model, and a
sample of accepted sets through real Envoy."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bench.label_fuzz import cluster_views, check_problems, envoy_validate, label_value
from controlplane.demo.envoy import envoy_binary
from controlplane.discovery.state import ClusterState, ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.labels import parse_container_labels
from controlplane.model.schema import LABELS, LabelSpec

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


@settings(max_examples=300, deadline=None, suppress_health_check=_SLOW_DATA)
@given(st.sampled_from(LABELS).flatmap(lambda spec: st.tuples(st.just(spec), label_value(spec))))
def test_any_string_in_any_label_parses_or_is_a_problem_naming_that_label(drawn: tuple[LabelSpec, str]) -> None:
    spec, value = drawn
    key = f"xds.{spec.name}"
    labels = {"xds.service": "orders", key: value} if spec.name != "service" else {key: value}

    parsed = parse_container_labels(ContainerDefinition("app", labels, (PortMapping(50051),)))

    assert bool(parsed.declarations) != any(p.severity == "error" for p in parsed.problems)
    for problem in parsed.problems:
        assert problem.label in labels, problem
        assert problem.label in problem.message
        problem.message.encode("utf-8")
        assert problem.value is None or len(problem.value) <= 4 * 80


@settings(max_examples=100, deadline=None, suppress_health_check=_SLOW_DATA)
@given(cluster_views(), st.randoms(use_true_random=False))
def test_random_label_sets_build_the_same_mesh_in_any_order_and_name_a_label_in_every_problem(
    views: list[ClusterState], shuffle: random.Random
) -> None:
    mesh = build_mesh(views)

    check_problems(views, mesh)
    (view,) = views
    tasks, tds = list(view.tasks), list(view.task_definitions.values())
    shuffle.shuffle(tasks)
    shuffle.shuffle(tds)
    reordered = ClusterState(cluster=view.cluster, tasks=tuple(tasks), task_definitions={td.arn: td for td in tds}, synced_at=1.0)
    assert build_mesh([reordered]) == mesh


@settings(max_examples=5, deadline=None, suppress_health_check=[*_SLOW_DATA, HealthCheck.filter_too_much])
@given(cluster_views(valid_only=True))
def test_a_sample_of_accepted_label_sets_is_accepted_by_envoy(tmp_path_factory: pytest.TempPathFactory, views: list[ClusterState]) -> None:
    mesh = build_mesh(views)
    assume(mesh.services)
    ok, output = envoy_validate(envoy_binary(), mesh, tmp_path_factory.mktemp("label-fuzz"))
    assert ok, output
