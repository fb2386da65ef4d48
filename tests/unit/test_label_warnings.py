"""No silent ignore: unknown labels (any case) with suggestions, labels without effect, unknown targets."""

from __future__ import annotations

import pytest

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.labels import parse_container_labels
from controlplane.model.mesh import ProblemKind

from .builders import cluster_state, task, task_definition


def _problems(labels: dict[str, str], ports: tuple[int, ...] = (50051,)) -> list[tuple[str, str, str]]:
    parsed = parse_container_labels(ContainerDefinition("app", labels, tuple(PortMapping(p) for p in ports)))
    return [(p.label, p.kind.value, p.message) for p in parsed.problems]


@pytest.mark.parametrize(
    "key,message",
    [
        ("xds.servcie", "unknown label, ignored: did you mean xds.service?"),
        ("xds.Service", "unknown label, ignored: did you mean xds.service? (label names are case-sensitive)"),
        ("XDS.PORT", "unknown label, ignored: did you mean xds.port? (label names are case-sensitive)"),
        ("xds.route.prefixes", "unknown label, ignored: did you mean xds.route.prefix?"),
        ("xds.1.lb.polcy", "unknown label, ignored: did you mean xds.1.lb.policy?"),
        ("xds.10.service", "unknown label, ignored: did you mean xds.service?"),
        ("xds.frobnicate", "unknown label, ignored (docs/labels.md lists the labels we read)"),
    ],
)
def test_unknown_labels_in_any_case_get_a_suggestion(key: str, message: str) -> None:
    problems = _problems({"xds.service": "orders", "xds.1.service": "web", "xds.1.port": "50051", key: "x"})
    assert (key, "unknown_label", f"label {key}='x': {message}") in problems


def test_a_container_with_labels_but_no_service_is_warned_about_each() -> None:
    problems = _problems({"xds.Service": "orders", "xds.port": "50051", "xds.3.port": "1", "other.label": "1"})
    assert problems == [
        ("xds.3.port", "no_effect", "label xds.3.port='1': has no effect: xds.3.service is not set, so this container declares no service here"),
        ("xds.Service", "unknown_label", "label xds.Service='orders': unknown label, ignored: did you mean xds.service? (label names are case-sensitive)"),
        ("xds.port", "no_effect", "label xds.port='50051': has no effect: xds.service is not set, so this container declares no service here"),
    ]


@pytest.mark.parametrize(
    "labels,label,reason",
    [
        ({"xds.route.enabled": "false", "xds.route.weights": "orders:1"}, "xds.route.weights", "xds.route.enabled=false gives the service no route of its own"),
        ({"xds.route.enabled": "false", "xds.route.hosts": "a.example.com"}, "xds.route.hosts", "xds.route.enabled=false gives the service no route of its own"),
        ({"xds.route.weights": "orders:1", "xds.route.newest-revision-weight": "10"}, "xds.route.newest-revision-weight", "xds.route.weights decides where the calls go"),
        ({"xds.health.interval": "2s"}, "xds.health.interval", "xds.health.check is none"),
        ({"xds.outlier.ejection-time": "1m"}, "xds.outlier.ejection-time", "no outlier trigger is set"),
        ({"xds.retry.attempts": "0", "xds.retry.on": "unavailable"}, "xds.retry.on", "xds.retry.attempts is 0"),
        ({"xds.retry.budget": "20", "xds.circuit-breaker.max-retries": "5"}, "xds.circuit-breaker.max-retries", "xds.retry.budget replaces it"),
    ],
)
def test_labels_without_effect_are_warnings(labels: dict[str, str], label: str, reason: str) -> None:
    parsed = parse_container_labels(ContainerDefinition("app", {"xds.service": "orders", **labels}, (PortMapping(50051),)))
    assert len(parsed.declarations) == 1  # a warning leaves the declaration in use
    (problem,) = parsed.problems
    assert (problem.label, problem.kind, problem.severity) == (label, ProblemKind.NO_EFFECT, "warning")
    assert f": has no effect: {reason}" in problem.message


def test_upstreams_and_weights_naming_unknown_services_are_warnings() -> None:
    td = task_definition("orders", 1, {"xds.service": "orders", "xds.upstreams": "payments,orders", "xds.route.weights": "orders:9,ghost:1"})
    mesh = build_mesh([cluster_state([task(td, "t", "127.0.0.1")], [td])])
    assert sorted((p.label, p.kind, p.severity) for p in mesh.problems) == [
        ("xds.route.weights", ProblemKind.UNKNOWN_TARGET, "warning"),
        ("xds.upstreams", ProblemKind.UNKNOWN_TARGET, "warning"),
    ]
    assert any("names 'payments', which no running task serves" in p.message for p in mesh.problems)


def test_the_health_timeout_error_blames_the_label_the_user_set() -> None:
    (problem,) = _problems({"xds.service": "orders", "xds.health.check": "grpc", "xds.health.interval": "500ms"})
    assert problem[2].startswith("label xds.health.interval='500ms': expected a duration longer")
    assert problem[:2] == ("xds.health.interval", "conflicting_labels")
    assert "longer than the health check timeout (1s unless xds.health.timeout says otherwise)" in problem[2]
