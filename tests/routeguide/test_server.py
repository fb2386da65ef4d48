"""The route guide as a real subprocess, started the way the local ECS starts a task."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide import client
from controlplane.routeguide.process import RouteGuideProcess

pytestmark = pytest.mark.integration

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def plain_server() -> Iterator[RouteGuideProcess]:
    with RouteGuideProcess("127.0.31.1", task_id="task-plain") as proc:
        yield proc


def _health(address: str, service: str = "") -> int:
    with client.open_channel(address) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5).status


def _wait_for_health(address: str, want: int, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = [_health(address, s) for s in ("", "routeguide.RouteGuide")]
        if got == [want, want]:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"health stayed {got}, wanted {want}")
        time.sleep(0.05)


def test_all_four_rpc_kinds_report_who_served_them(plain_server: RouteGuideProcess) -> None:
    served = client.exercise_all_kinds(plain_server.address)
    assert set(served) == {"GetFeature", "ListFeatures", "RecordRoute", "RouteChat"}
    for method, by in served.items():
        assert by.task_id == "task-plain", method
        assert by.task_arn == "arn:aws:ecs:local:000000000000:task/test/task-plain"
        assert by.address == plain_server.address
        assert by.address.startswith("127.0.31.1:")
        assert by.container_name == "routeguide"


def test_rpc_payloads(plain_server: RouteGuideProcess) -> None:
    with client.open_channel(plain_server.address) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        rect = pb.Rectangle(lo=pb.Point(latitude=0, longitude=0), hi=pb.Point(latitude=40, longitude=80))
        features = list(stub.ListFeatures(rect, timeout=5))
        assert [(f.location.latitude, f.location.longitude) for f in features] == \
            [(0, 0), (10, 20), (20, 40), (30, 60), (40, 80)]
        summary = stub.RecordRoute(iter([pb.Point(latitude=0, longitude=0), pb.Point(latitude=10_000_000)]),
                                   timeout=5)
        assert summary.point_count == 2
        assert 110_000 < summary.distance < 112_000  # one degree of latitude
        notes = [pb.RouteNote(message=f"m{i}") for i in range(4)]
        assert [n.message for n in stub.RouteChat(iter(notes), timeout=5)] == ["m0", "m1", "m2", "m3"]


def test_count_calls_tallies_one_address(plain_server: RouteGuideProcess) -> None:
    tally = client.count_calls(plain_server.address, 20)
    assert dict(tally.by_address) == {plain_server.address: 20}
    assert dict(tally.by_task_id) == {"task-plain": 20}
    assert tally.failed == 0 and tally.total == 20


def test_health_serving_by_default(plain_server: RouteGuideProcess) -> None:
    assert _health(plain_server.address) == SERVING
    assert _health(plain_server.address, "routeguide.RouteGuide") == SERVING


def test_load_loop_is_bounded_by_count_and_time(plain_server: RouteGuideProcess) -> None:
    loop = client.LoadLoop(plain_server.address, max_calls=25, max_seconds=10).start()
    tally = loop.join(timeout=10)
    assert not loop.running
    assert tally.total == 25 and dict(tally.by_address) == {plain_server.address: 25}
    started = time.monotonic()
    tally = client.LoadLoop(plain_server.address, max_calls=10**9, max_seconds=0.3).start().join(timeout=10)
    assert time.monotonic() - started < 2.0 and tally.succeeded > 0
    with client.LoadLoop(plain_server.address, max_seconds=30) as loop:
        time.sleep(0.1)
    assert not loop.running and loop.tally().succeeded > 0


def test_local_ecs_port_mapping_is_honoured() -> None:
    with RouteGuideProcess("127.0.31.2", container_port=8080, port=0) as proc:
        assert proc.address.startswith("127.0.31.2:")
        assert not proc.address.endswith(":8080")
        assert client.count_calls(proc.address, 1).succeeded == 1


def test_fail_fraction_one_fails_every_call_with_the_status() -> None:
    env = {"ROUTEGUIDE_FAIL_FRACTION": "1", "ROUTEGUIDE_FAIL_STATUS": "RESOURCE_EXHAUSTED"}
    with RouteGuideProcess("127.0.31.3", env=env) as proc:
        tally = client.count_calls(proc.address, 20)
        assert dict(tally.failures) == {grpc.StatusCode.RESOURCE_EXHAUSTED: 20}
        assert tally.succeeded == 0
        for method in client.METHODS:
            t = client.count_calls(proc.address, 1, method=method)
            assert dict(t.failures) == {grpc.StatusCode.RESOURCE_EXHAUSTED: 1}, method


def test_fail_fraction_half_fails_about_half() -> None:
    with RouteGuideProcess("127.0.31.4", env={"ROUTEGUIDE_FAIL_FRACTION": "0.5"}) as proc:
        tally = client.count_calls(proc.address, 200)
    assert tally.total == 200
    assert set(tally.failures) == {grpc.StatusCode.UNAVAILABLE}
    assert 70 <= tally.failed <= 130, tally


def test_latency_is_added_per_call_and_per_streamed_message() -> None:
    with RouteGuideProcess("127.0.31.5", env={"ROUTEGUIDE_LATENCY_MS": "150"}) as proc:
        with client.open_channel(proc.address) as channel:
            stub = pb_grpc.RouteGuideStub(channel)
            stub.GetFeature(pb.Point(), timeout=5)  # connect first, so only the call is timed
            started = time.monotonic()
            stub.GetFeature(pb.Point(), timeout=5)
            assert time.monotonic() - started >= 0.150
            started = time.monotonic()
            notes = list(stub.RouteChat(iter([pb.RouteNote(), pb.RouteNote()]), timeout=5))
            assert len(notes) == 2 and time.monotonic() - started >= 0.300


def test_initial_health_not_serving() -> None:
    with RouteGuideProcess("127.0.31.6", env={"ROUTEGUIDE_HEALTH": "NOT_SERVING"}) as proc:
        assert _health(proc.address) == NOT_SERVING
        assert _health(proc.address, "routeguide.RouteGuide") == NOT_SERVING
        # Health is what checkers see; calls themselves still work.
        assert client.count_calls(proc.address, 1).succeeded == 1


def test_health_flips_through_the_health_file(tmp_path: Path) -> None:
    health_file = tmp_path / "health"
    health_file.write_text("NOT_SERVING\n")
    with RouteGuideProcess("127.0.31.7", env={"ROUTEGUIDE_HEALTH_FILE": str(health_file)}) as proc:
        _wait_for_health(proc.address, NOT_SERVING)
        health_file.write_text("serving")
        _wait_for_health(proc.address, SERVING)
        health_file.write_text("garbage")  # ignored: status stays
        time.sleep(0.5)
        _wait_for_health(proc.address, SERVING, timeout=0)
        health_file.write_text("NOT_SERVING")
        _wait_for_health(proc.address, NOT_SERVING)
        assert proc.find_event("routeguide.health_file_invalid") is not None
        assert proc.find_event("routeguide.health_changed") is not None


@pytest.mark.parametrize(("env", "message"), [
    ({"ROUTEGUIDE_FAIL_FRACTION": "x"}, 'ROUTEGUIDE_FAIL_FRACTION="x": expected a number between 0 and 1'),
    ({"ROUTEGUIDE_FAIL_STATUS": "TEAPOT"}, 'ROUTEGUIDE_FAIL_STATUS="TEAPOT": expected a gRPC status name'),
    ({"ROUTEGUIDE_HEALTH": "ok"}, 'ROUTEGUIDE_HEALTH="ok": expected SERVING or NOT_SERVING'),
    ({"LOCAL_ECS_HOST": "192.0.2.1"}, 'LOCAL_ECS_HOST="192.0.2.1": expected an address in 127.0.0.0/8'),
])
def test_invalid_env_exits_non_zero_with_the_message(env: dict[str, str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "controlplane.routeguide", "--port", "0"],
                            env={"LOCAL_ECS_HOST": "127.0.31.8", "PATH": "/usr/bin:/bin", **env},
                            capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert message in result.stderr


def test_sigterm_lets_an_in_flight_call_finish() -> None:
    env = {"ROUTEGUIDE_LATENCY_MS": "1000", "ROUTEGUIDE_SHUTDOWN_GRACE_S": "5"}
    with RouteGuideProcess("127.0.31.9", env=env) as proc, client.open_channel(proc.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        stub = pb_grpc.RouteGuideStub(channel)
        future = stub.GetFeature.future(pb.Point(latitude=1), timeout=10)
        time.sleep(0.3)  # the call is now sleeping inside the server
        proc.terminate()
        reply = future.result(timeout=10)
        assert reply.served_by.address == proc.address
        assert proc.wait(timeout=10) == 0
        names = [e["event"] for e in proc.events()]
        assert names.index("routeguide.started") < names.index("routeguide.stopping") < \
            names.index("routeguide.stopped")


def test_sigterm_cuts_calls_longer_than_the_grace() -> None:
    env = {"ROUTEGUIDE_LATENCY_MS": "3000", "ROUTEGUIDE_SHUTDOWN_GRACE_S": "0.2"}
    with RouteGuideProcess("127.0.31.10", env=env) as proc, client.open_channel(proc.address) as channel:
        grpc.channel_ready_future(channel).result(timeout=5)
        future = pb_grpc.RouteGuideStub(channel).GetFeature.future(pb.Point(), timeout=10)
        time.sleep(0.2)
        started = time.monotonic()
        proc.terminate()
        with pytest.raises(grpc.RpcError):
            future.result(timeout=10)
        assert time.monotonic() - started < 2.5
        assert proc.wait(timeout=10) == 0
