"""The escape hatch with real parts: local ECS tasks, the control plane started with an edge
listener patch file, a real Envoy and real gRPC calls (docs/labels.md, "Escape hatch").

What a user sees: the fields a patch names change in Envoy's /config_dump (a cluster's connect
timeout and buffer limit, a route's timeout, the edge listener's buffer limit); a patch naming a field
Envoy does not have disables that one service, with a precise problem in the admin API and the
metrics, while the other services keep serving.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc

pytestmark = pytest.mark.integration

SERVICES: dict[str, dict[str, str]] = {
    "patched": {
        "xds.route.hosts": "patched.patch.test",
        "xds.patch.cluster": '{"connect_timeout": "0.75s", "per_connection_buffer_limit_bytes": 65536}',
        "xds.patch.route": '{"route": {"timeout": "7s"}}',
    },
    # conect_timeout: a typo, a field the Cluster does not have.
    "broken": {"xds.route.hosts": "broken.patch.test", "xds.patch.cluster": '{"conect_timeout": "1s"}'},
    "plain": {"xds.route.hosts": "plain.patch.test"},
}
LISTENER_BUFFER = 49152


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    patch_file = tmp_path_factory.mktemp("patch") / "edge-listener.json"
    patch_file.write_text(json.dumps({"per_connection_buffer_limit_bytes": LISTENER_BUFFER}))
    with DemoStack(cluster="patch", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        for name, labels in SERVICES.items():
            stack.create_service(name, stack.register(family=name, service=name, labels=labels), 1)
        for name in SERVICES:
            stack.wait_for_running(name, 1, timeout=60)
        stack.start_control_plane("--edge-listener-patch", str(patch_file))
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-patch")
    for name in ("patched", "plain"):
        envoy.wait_for_hosts(name, stack.addresses(stack.running_tasks(name)), timeout=30)
    return envoy


def _dump(envoy: EnvoyProcess, kind: str) -> list[dict[str, Any]]:
    return [c for c in envoy.config_dump()["configs"] if c["@type"].endswith("." + kind)]


def _call(envoy: EnvoyProcess, host: str) -> grpc.StatusCode:
    options = [("grpc.default_authority", host), ("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(envoy.target, options=options) as channel:
        try:
            pb_grpc.RouteGuideStub(channel).GetFeature(pb.Point(latitude=1, longitude=2), timeout=5)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


def test_a_cluster_patch_changes_the_fields_it_names_in_envoy(envoy: EnvoyProcess) -> None:
    (clusters,) = _dump(envoy, "ClustersConfigDump")
    by_name = {c["cluster"]["name"]: c["cluster"] for c in clusters["dynamic_active_clusters"]}

    assert by_name["patched"]["connect_timeout"] == "0.750s"
    assert by_name["patched"]["per_connection_buffer_limit_bytes"] == 65536
    # The rest of the cluster is ours, unchanged; the unpatched service keeps our defaults.
    assert by_name["patched"]["type"] == "EDS" and by_name["patched"]["circuit_breakers"] == by_name["plain"]["circuit_breakers"]
    assert by_name["plain"]["connect_timeout"] == "2s" and "per_connection_buffer_limit_bytes" not in by_name["plain"]


def test_a_route_patch_and_the_edge_listener_patch_change_their_fields(envoy: EnvoyProcess) -> None:
    (routes,) = _dump(envoy, "RoutesConfigDump")
    found = {
        r["name"]: r["route"]
        for config in routes["dynamic_route_configs"] for vhost in config["route_config"]["virtual_hosts"] for r in vhost["routes"]
    }
    assert found["patched"]["timeout"] == "7s" and found["plain"]["timeout"] == "0s"
    (listeners,) = _dump(envoy, "ListenersConfigDump")
    (edge,) = [entry["active_state"]["listener"] for entry in listeners["dynamic_listeners"] if entry["name"] == "edge"]
    assert edge["per_connection_buffer_limit_bytes"] == LISTENER_BUFFER


def test_a_bad_patch_disables_only_its_service_with_a_precise_problem(stack: DemoStack, envoy: EnvoyProcess) -> None:
    assert _call(envoy, "plain.patch.test") is grpc.StatusCode.OK
    assert _call(envoy, "patched.patch.test") is grpc.StatusCode.OK
    # broken has no cluster and no route: its host gets Envoy's 404 (UNIMPLEMENTED).
    assert _call(envoy, "broken.patch.test") is grpc.StatusCode.UNIMPLEMENTED
    (clusters,) = _dump(envoy, "ClustersConfigDump")
    assert "broken" not in {c["cluster"]["name"] for c in clusters["dynamic_active_clusters"]}

    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "services", "--json", "--admin", stack.admin_target], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    services = {s["name"]: s for s in json.loads(result.stdout)["services"]}
    assert services["broken"]["state"] == "disabled" and services["plain"]["state"] == "serving"
    (problem,) = services["broken"]["problems"]
    assert problem["label"] == "xds.patch.cluster" and problem["severity"] == "error" and problem["kind"] == "invalid_value"
    assert 'has no field named "conect_timeout"' in problem["message"], problem
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'controlplane_label_problems{kind="invalid_value",severity="error"} 1.0' in metrics


def test_serve_refuses_an_edge_listener_patch_naming_an_unknown_field_in_one_line(tmp_path: Path) -> None:
    patch_file = tmp_path / "bad.json"
    patch_file.write_text('{"per_connection_buffer_limit": 1}')
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", "serve", "--cluster", "none", "--edge-listener-patch", str(patch_file)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert 'no field named "per_connection_buffer_limit"' in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
