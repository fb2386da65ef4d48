"""Parsing of the route guide's environment: pure functions, no processes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from controlplane.routeguide.behaviour import Behaviour, BehaviourError, FailureInjector, HealthStatus
from controlplane.routeguide.loopback import require_loopback_target
from controlplane.routeguide.task import BindAddress, BindError, TaskIdentity


def test_defaults() -> None:
    b = Behaviour.from_env({})
    assert b == Behaviour()
    assert b.fail_status is grpc.StatusCode.UNAVAILABLE
    assert b.initial_health is HealthStatus.SERVING
    assert b.shutdown_grace_s == 5.0


def test_all_values(tmp_path: Path) -> None:
    b = Behaviour.from_env({
        "ROUTEGUIDE_LATENCY_MS": "12.5",
        "ROUTEGUIDE_FAIL_FRACTION": "0.25",
        "ROUTEGUIDE_FAIL_STATUS": "resource_exhausted",
        "ROUTEGUIDE_HEALTH": "not_serving",
        "ROUTEGUIDE_HEALTH_FILE": str(tmp_path / "health"),
        "ROUTEGUIDE_SHUTDOWN_GRACE_S": "0.5",
        "ROUTEGUIDE_SEED": "7",
    })
    assert b.latency_s == pytest.approx(0.0125)
    assert b.fail_fraction == 0.25
    assert b.fail_status is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert b.initial_health is HealthStatus.NOT_SERVING
    assert b.health_file == tmp_path / "health"
    assert b.shutdown_grace_s == 0.5
    assert b.seed == 7


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ROUTEGUIDE_FAIL_FRACTION", "x", 'ROUTEGUIDE_FAIL_FRACTION="x": expected a number between 0 and 1'),
    ("ROUTEGUIDE_FAIL_FRACTION", "1.5", 'ROUTEGUIDE_FAIL_FRACTION="1.5": expected a number between 0 and 1'),
    ("ROUTEGUIDE_FAIL_FRACTION", "nan", 'ROUTEGUIDE_FAIL_FRACTION="nan": expected a number between 0 and 1'),
    ("ROUTEGUIDE_LATENCY_MS", "-1", 'ROUTEGUIDE_LATENCY_MS="-1": expected a number of milliseconds >= 0'),
    ("ROUTEGUIDE_FAIL_STATUS", "OK", 'ROUTEGUIDE_FAIL_STATUS="OK": expected a gRPC status name other than OK'),
    ("ROUTEGUIDE_FAIL_STATUS", "NOPE", 'ROUTEGUIDE_FAIL_STATUS="NOPE": expected a gRPC status name'),
    ("ROUTEGUIDE_HEALTH", "maybe", 'ROUTEGUIDE_HEALTH="maybe": expected SERVING or NOT_SERVING'),
    ("ROUTEGUIDE_SHUTDOWN_GRACE_S", "soon", 'ROUTEGUIDE_SHUTDOWN_GRACE_S="soon": expected a number of seconds'),
    ("ROUTEGUIDE_SEED", "1.5", 'ROUTEGUIDE_SEED="1.5": expected an integer'),
])
def test_invalid_values_name_variable_and_expectation(name: str, value: str, message: str) -> None:
    with pytest.raises(BehaviourError) as info:
        Behaviour.from_env({name: value})
    assert message in str(info.value)


def test_failure_injector_extremes_and_seed() -> None:
    assert not any(FailureInjector(0.0).should_fail() for _ in range(100))
    assert all(FailureInjector(1.0).should_fail() for _ in range(100))
    a, b = FailureInjector(0.5, seed=3), FailureInjector(0.5, seed=3)
    assert [a.should_fail() for _ in range(50)] == [b.should_fail() for _ in range(50)]


def test_bind_address_from_local_ecs_env() -> None:
    assert BindAddress.resolve(50051, {}) == BindAddress("127.0.0.1", 50051)
    env = {"LOCAL_ECS_HOST": "127.0.9.9", "LOCAL_ECS_PORT_50051": "31000"}
    assert BindAddress.resolve(50051, env) == BindAddress("127.0.9.9", 31000)
    assert BindAddress.resolve(8080, env) == BindAddress("127.0.9.9", 8080)


def test_bind_address_refuses_non_loopback_unless_allowed() -> None:
    with pytest.raises(BindError, match=r'LOCAL_ECS_HOST="10.1.2.3": expected an address in 127.0.0.0/8'):
        BindAddress.resolve(50051, {"LOCAL_ECS_HOST": "10.1.2.3"})
    assert BindAddress.resolve(50051, {"LOCAL_ECS_HOST": "10.1.2.3"}, allow_non_loopback=True).host == "10.1.2.3"
    with pytest.raises(BindError, match='LOCAL_ECS_PORT_50051="http"'):
        BindAddress.resolve(50051, {"LOCAL_ECS_PORT_50051": "http"})


def test_task_identity_fallback_is_hostname_based() -> None:
    ident = TaskIdentity.from_env({})
    assert ident.task_id and ident.task_arn.endswith(ident.task_id)
    assert TaskIdentity.from_env({"ECS_TASK_ID": "t", "ECS_TASK_ARN": "arn", "ECS_CONTAINER_NAME": "c"}) == \
        TaskIdentity("t", "arn", "c")


@pytest.mark.parametrize("target", ["10.0.0.1:80", "example.com:443", "0.0.0.0:1", "127.0.0.1", "127.0.0.1:0"])
def test_non_loopback_or_malformed_targets_are_refused(target: str) -> None:
    with pytest.raises(ValueError):
        require_loopback_target(target)


@pytest.mark.parametrize("target", ["127.0.0.1:50051", "127.3.4.5:1", "localhost:80", "[::1]:443"])
def test_loopback_targets_are_accepted(target: str) -> None:
    require_loopback_target(target)
