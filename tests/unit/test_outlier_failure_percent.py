"""xds.outlier.failure-percent and its two settings: parsed and refused precisely, sent to Envoy
with the consecutive triggers, and to proxyless gRPC clients alone (gRFC A50)."""

from __future__ import annotations

import dataclasses

import pytest

from controlplane.admin.views import services
from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.errors import LabelError
from controlplane.model.build import build_mesh
from controlplane.model.labels import parse_container, parse_container_labels
from controlplane.model.mesh import OutlierDetection, ProblemKind, Service, TrafficPolicy
from controlplane.proxy.roles import GrpcClientRole
from controlplane.translate import TranslationMemo, translate
from controlplane.translate.cluster import grpc_client_cluster, service_cluster
from controlplane.xds.types import TypeUrl

from .builders import cluster_state, task, task_definition
from .xds import mesh, service


def _container(labels: dict[str, str]) -> ContainerDefinition:
    return ContainerDefinition("app", {"xds.service": "orders", **labels}, (PortMapping(50051),))


def _outlier(labels: dict[str, str]) -> OutlierDetection:
    declaration = parse_container(_container(labels))
    assert declaration is not None
    return declaration.policy.outlier_detection


def _with(svc: Service, detection: OutlierDetection) -> Service:
    return dataclasses.replace(svc, policy=TrafficPolicy(outlier_detection=detection))


def test_failure_percent_is_a_trigger_with_envoys_defaults_for_its_settings() -> None:
    detection = _outlier({"xds.outlier.failure-percent": "50"})
    assert detection.enabled
    assert (detection.failure_percent, detection.failure_min_requests, detection.failure_min_tasks) == (50, 50, 5)
    detection = _outlier({"xds.outlier.failure-percent": "100", "xds.outlier.failure-min-requests": "5", "xds.outlier.failure-min-tasks": "2"})
    assert (detection.failure_percent, detection.failure_min_requests, detection.failure_min_tasks) == (100, 5, 2)
    assert not _outlier({}).enabled and _outlier({}).failure_percent is None


@pytest.mark.parametrize(
    ("label", "value", "expected"),
    [
        ("xds.outlier.failure-percent", "0", "expected an integer 1-100"),
        ("xds.outlier.failure-percent", "101", "expected an integer 1-100"),
        ("xds.outlier.failure-percent", "50%", "expected an integer 1-100"),
        ("xds.outlier.failure-min-requests", "0", "expected an integer 1-100000"),
        ("xds.outlier.failure-min-tasks", "1001", "expected an integer 1-1000"),
    ],
)
def test_out_of_range_values_are_refused_with_the_label_named(label: str, value: str, expected: str) -> None:
    with pytest.raises(LabelError) as caught:
        parse_container(_container({"xds.outlier.failure-percent": "50", label: value}))
    assert caught.value.label == label
    assert str(caught.value).startswith(f"label {label}={value!r}: {expected}"), str(caught.value)


def test_its_settings_without_failure_percent_are_warnings() -> None:
    parsed = parse_container_labels(_container({"xds.outlier.consecutive-5xx": "3", "xds.outlier.failure-min-tasks": "2"}))
    (problem,) = parsed.problems
    assert (problem.label, problem.kind, problem.severity) == ("xds.outlier.failure-min-tasks", ProblemKind.NO_EFFECT, "warning")
    assert problem.message.endswith("has no effect: xds.outlier.failure-percent is not set")
    # failure-percent alone is a trigger: the shared settings take effect.
    assert not parse_container_labels(_container({"xds.outlier.failure-percent": "50", "xds.outlier.interval": "1s"})).problems


def test_a_tcp_service_refuses_it() -> None:
    parsed = parse_container_labels(_container({"xds.protocol": "tcp", "xds.route.port": "6379", "xds.outlier.failure-percent": "50"}))
    assert not parsed.declarations
    assert [p.label for p in parsed.problems] == ["xds.outlier.failure-percent"]
    assert "it counts HTTP statuses" in parsed.problems[0].message


def test_envoy_gets_failure_percentage_beside_the_consecutive_triggers() -> None:
    detection = OutlierDetection(consecutive_5xx=3, failure_percent=40, failure_min_requests=20, failure_min_tasks=2, interval_ms=1000)
    message = service_cluster(_with(service("a", "127.0.0.1"), detection)).outlier_detection
    assert (message.failure_percentage_threshold.value, message.enforcing_failure_percentage.value) == (40, 100)
    assert (message.failure_percentage_minimum_hosts.value, message.failure_percentage_request_volume.value) == (2, 20)
    assert (message.consecutive_5xx.value, message.enforcing_consecutive_5xx.value, message.enforcing_success_rate.value) == (3, 100, 0)
    assert message.interval.ToMilliseconds() == 1000


def test_without_failure_percent_envoy_gets_no_failure_percentage_field() -> None:
    message = service_cluster(_with(service("a", "127.0.0.1"), OutlierDetection(consecutive_5xx=3))).outlier_detection
    # Unset, enforcing_failure_percentage is Envoy's 0: the golden output of the consecutive triggers is unchanged.
    assert not any(field.name.startswith(("failure_percentage", "enforcing_failure")) for field, _ in message.ListFields())


def test_a_grpc_client_gets_only_what_grpc_applies() -> None:
    detection = OutlierDetection(
        consecutive_5xx=3, consecutive_gateway_errors=2, failure_percent=50, failure_min_requests=5, failure_min_tasks=2,
        interval_ms=1000, base_ejection_ms=60000, max_ejection_percent=30,
    )
    message = grpc_client_cluster(_with(service("a", "127.0.0.1"), detection)).outlier_detection
    assert {field.name: value for field, value in message.ListFields() if field.message_type.name == "UInt32Value"} == {
        "max_ejection_percent": message.max_ejection_percent,
        "enforcing_success_rate": message.enforcing_success_rate,
        "failure_percentage_threshold": message.failure_percentage_threshold,
        "enforcing_failure_percentage": message.enforcing_failure_percentage,
        "failure_percentage_minimum_hosts": message.failure_percentage_minimum_hosts,
        "failure_percentage_request_volume": message.failure_percentage_request_volume,
    }
    assert [message.max_ejection_percent.value, message.enforcing_success_rate.value] == [30, 0]  # success rate off (A50: on unless 0)
    assert [message.failure_percentage_threshold.value, message.enforcing_failure_percentage.value] == [50, 100]
    assert [message.failure_percentage_minimum_hosts.value, message.failure_percentage_request_volume.value] == [2, 5]
    assert (message.interval.ToMilliseconds(), message.base_ejection_time.ToMilliseconds()) == (1000, 60000)
    # Consecutive triggers alone: gRPC would apply nothing, so nothing is sent.
    assert not grpc_client_cluster(_with(service("a", "127.0.0.1"), OutlierDetection(consecutive_5xx=3))).HasField("outlier_detection")


def test_a_label_change_reaches_a_grpc_client_through_the_memo() -> None:
    memo, role = TranslationMemo(), GrpcClientRole(service="caller")
    caller = dataclasses.replace(service("caller", "127.0.9.1"), upstreams=("a",))
    before = translate(mesh(caller, service("a", "127.0.0.1")), role, memo).of(TypeUrl.CLUSTER)["a"]
    changed = _with(service("a", "127.0.0.1"), OutlierDetection(failure_percent=50))
    after = translate(mesh(caller, changed), role, memo).of(TypeUrl.CLUSTER)["a"]
    assert not before.HasField("outlier_detection")  # type: ignore[attr-defined]
    assert after.outlier_detection.failure_percentage_threshold.value == 50  # type: ignore[attr-defined]


def test_the_admin_api_shows_the_failure_percentage_settings() -> None:
    td = task_definition("orders", 1, {"xds.service": "orders", "xds.outlier.failure-percent": "50", "xds.outlier.failure-min-tasks": "2"})
    (shown,) = services(build_mesh([cluster_state([task(td, "o", "127.0.0.1")], [td])]))
    p = shown.policies
    assert p.outlier_detection and (p.outlier_failure_percent, p.outlier_failure_min_requests, p.outlier_failure_min_tasks) == (50, 50, 2)
    assert (p.outlier_consecutive_5xx, p.outlier_max_ejection_percent) == (0, 50)
    plain = task_definition("plain", 1, {"xds.service": "plain"})
    (shown,) = services(build_mesh([cluster_state([task(plain, "p", "127.0.0.2")], [plain])]))
    assert (shown.policies.outlier_failure_percent, shown.policies.outlier_failure_min_requests) == (0, 0)
