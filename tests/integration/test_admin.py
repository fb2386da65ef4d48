"""The admin API against a running control plane with real Envoys connected: a real grpcio
client, grpcurl through server reflection, the CLI, and the Prometheus endpoint."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.proto import routeguide_pb2, routeguide_pb2_grpc

pytestmark = pytest.mark.integration

SERVICE = "routeguide"
TOKEN = "s3cret-admin-token"


@pytest.fixture(scope="module")
def admin_stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="admin", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 2)
        broken = stack.register(family="broken", service="broken", labels={"xds.protocol": "carrier-pigeon", "xds.route.hosts": "broken.local"})
        stack.create_service("broken", broken, 1)
        stack.wait_for_running(SERVICE, 2)
        stack.wait_for_running("broken", 1)
        token_file = stack.work_dir / "admin-token"
        token_file.write_text(TOKEN + "\n")
        stack.start_control_plane("--admin-token-file", str(token_file), "--xds-nack-retry-seconds", "1", "--xds-nack-retry-max-seconds", "2")
        yield stack


@pytest.fixture(scope="module")
def edge(admin_stack: DemoStack) -> EnvoyProcess:
    envoy = admin_stack.start_envoy("edge-admin")
    envoy.wait_for_hosts(SERVICE, admin_stack.addresses(admin_stack.running_tasks(SERVICE)), timeout=20)
    return envoy


@pytest.fixture(scope="module")
def admin(admin_stack: DemoStack) -> Iterator[admin_pb2_grpc.AdminStub]:
    with grpc.insecure_channel(admin_stack.admin_target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        yield admin_pb2_grpc.AdminStub(channel)


AUTH = [("authorization", f"Bearer {TOKEN}")]


def wait_for(probe: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_service_endpoints_match_the_running_tasks(admin_stack: DemoStack, edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    service = admin.GetService(api.GetServiceRequest(name=SERVICE), metadata=AUTH, timeout=5)
    assert service.state == "serving" and service.protocol == "grpc"
    assert service.route.path_prefix == "/routeguide.RouteGuide/"
    got = {f"{e.address}:{e.port}" for e in service.endpoints}
    assert got == admin_stack.addresses(admin_stack.running_tasks(SERVICE))
    assert {e.health for e in service.endpoints} == {"healthy"}
    assert all(e.task_definition == "routeguide:1" and e.cluster == "admin" for e in service.endpoints)


def test_service_validation_error_names_label_value_and_task_definition(edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    service = admin.GetService(api.GetServiceRequest(name="broken"), metadata=AUTH, timeout=5)
    assert service.state == "disabled"
    (problem,) = service.problems
    assert problem.label == "xds.protocol" and problem.value == "carrier-pigeon" and problem.severity == "error"
    assert "broken:1" in problem.message and "expected one of grpc, http2, http1, tcp" in problem.message
    listed = admin.ListServices(api.ListServicesRequest(), metadata=AUTH, timeout=5)
    assert [s.name for s in listed.services] == ["broken", SERVICE]


def test_unknown_service_is_not_found_with_a_message(admin: admin_pb2_grpc.AdminStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetService(api.GetServiceRequest(name="nope"), metadata=AUTH, timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in caught.value.details() and SERVICE in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetService(api.GetServiceRequest(), metadata=AUTH, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_proxy_acked_versions_match_what_envoy_reports(edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    def in_sync() -> Any:
        proxies = admin.ListProxies(api.ListProxiesRequest(), metadata=AUTH, timeout=5).proxies
        mine = [p for p in proxies if p.node_id == "edge-admin"]
        if mine and len(mine[0].types) == 4 and all(t.version_sent == t.version_acked for t in mine[0].types):
            return mine[0]
        return None

    proxy = wait_for(in_sync)
    assert proxy, "edge-admin never ACKed all four types"
    assert proxy.role == "edge/127.0.0.1:%d" % edge.listen_port
    by_type = {t.type: t for t in proxy.types}
    assert set(by_type) == {"CDS", "EDS", "LDS", "RDS"}
    dump = edge.config_dump()
    cds_version = next(s["version_info"] for s in dump["configs"] if s["@type"].endswith("ClustersConfigDump"))
    assert by_type["CDS"].version_acked == cds_version
    assert by_type["EDS"].resource_names == [SERVICE]


def test_a_nacked_listener_is_reported_and_recovers_once_its_port_is_free(
    admin_stack: DemoStack, admin: admin_pb2_grpc.AdminStub
) -> None:
    # A port already taken (without SO_REUSEPORT) makes Envoy reject our listener: a real NACK.
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        envoy = admin_stack.start_envoy("edge-nacking", listen_port=port)

        def lds_of_nacking() -> Any:
            for p in admin.ListProxies(api.ListProxiesRequest(), metadata=AUTH, timeout=5).proxies:
                for t in p.types:
                    if p.node_id == "edge-nacking" and t.type == "LDS":
                        return t
            return None

        lds = wait_for(lambda: (t := lds_of_nacking()) is not None and t.last_nack.error and t, 15)
        assert lds, "the NACK never showed in ListProxies"
        assert str(port) in lds.last_nack.error
        assert lds.last_nack.version == lds.version_sent and lds.version_acked != lds.version_sent
        # Offered again only after the backoff (1 s, then 2 s: the stack's --xds-nack-retry-seconds), never in a loop.
        assert lds.responses_sent == 1 + lds.resends and lds.nacks in (lds.resends, lds.resends + 1)
        lds = wait_for(lambda: (t := lds_of_nacking()) is not None and t.resends >= 1 and t.nacks >= 2 and t, 15)
        assert lds, "the rejected listener was never offered again"
        assert not envoy.listener_active()
    finally:
        blocker.close()

    # The port is free: the next resend binds, without restarting anything.
    recovered = wait_for(lambda: (t := lds_of_nacking()) is not None and t.version_acked == t.version_sent and t, 15)
    assert recovered, "the listener never recovered after its port was freed"
    assert recovered.resends >= 2 and recovered.responses_sent == 1 + recovered.resends
    assert not recovered.HasField("next_resend_at")
    assert wait_for(envoy.listener_active, 5)
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)]) as channel:
        feature = routeguide_pb2_grpc.RouteGuideStub(channel).GetFeature(routeguide_pb2.Point(latitude=1, longitude=2), timeout=5)
    assert feature.served_by.address in admin_stack.addresses(admin_stack.running_tasks(SERVICE))
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_stack.metrics_port}/metrics", timeout=5).read().decode()
    resent = [line for line in text.splitlines() if line.startswith('controlplane_xds_nack_resends_total{type="LDS"}')]
    assert resent and float(resent[0].split()[-1]) >= recovered.resends


def test_proxy_config_is_the_exact_resources_sent(edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    config = admin.GetProxyConfig(api.GetProxyConfigRequest(node_id="edge-admin"), metadata=AUTH, timeout=5)
    names = {(r.type, r.name) for r in config.resources}
    assert names == {("CDS", SERVICE), ("EDS", SERVICE), ("LDS", "edge"), ("RDS", "edge")}
    listener = json.loads(next(r.json for r in config.resources if r.type == "LDS"))
    assert listener["address"]["socket_address"]["port_value"] == edge.listen_port
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetProxyConfig(api.GetProxyConfigRequest(node_id="ghost"), metadata=AUTH, timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "edge-admin" in caught.value.details()


def test_status_reports_each_cluster_view(admin_stack: DemoStack, edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    status = admin.GetStatus(api.GetStatusRequest(), metadata=AUTH, timeout=5)
    assert status.ready and status.services == 1 and status.problems == 1
    (cluster,) = status.clusters
    assert cluster.cluster == "admin" and cluster.tasks == 3 and not cluster.last_error
    assert cluster.view_age_seconds < 5
    assert cluster.last_sync_api_calls["DescribeTasks"] >= 1 and cluster.last_sync_api_calls["ListTasks"] == 1  # RUNNING only: vanished tasks are described, not listed


def test_watch_events_streams_pushes_and_acks(admin_stack: DemoStack, edge: EnvoyProcess, admin: admin_pb2_grpc.AdminStub) -> None:
    stream = admin.WatchEvents(api.WatchEventsRequest(kinds=["mesh_updated", "push", "ack"]), metadata=AUTH, timeout=30)
    admin_stack.ecs.update_service(cluster=admin_stack.cluster, service=SERVICE, desiredCount=3)
    kinds: list[tuple[str, str]] = []
    try:
        for event in stream:
            kinds.append((event.kind, event.type))
            if ("ack", "EDS") in kinds and any(k == "mesh_updated" for k, _ in kinds):
                break
    finally:
        stream.cancel()
    assert ("push", "EDS") in kinds and ("ack", "EDS") in kinds


def test_calls_without_the_token_are_refused(admin_stack: DemoStack, admin: admin_pb2_grpc.AdminStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetStatus(api.GetStatusRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        admin.GetStatus(api.GetStatusRequest(), metadata=[("authorization", "Bearer wrong")], timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert admin.GetStatus(api.GetStatusRequest(), metadata=AUTH, timeout=5).version


def grpcurl() -> str:
    found = Path(sys.executable).parent / "grpcurl"
    return str(found) if found.exists() else (shutil.which("grpcurl") or "grpcurl")


def test_grpcurl_works_through_reflection(admin_stack: DemoStack, edge: EnvoyProcess) -> None:
    base = [grpcurl(), "-plaintext", "-H", f"authorization: Bearer {TOKEN}"]
    listed = subprocess.run(base + [admin_stack.admin_target, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "controlplane.admin.v1.Admin" in listed.stdout.split()
    got = subprocess.run(
        base + ["-d", json.dumps({"name": SERVICE}), admin_stack.admin_target, "controlplane.admin.v1.Admin/GetService"],
        capture_output=True, text=True, timeout=30,
    )
    assert got.returncode == 0, got.stderr
    service = json.loads(got.stdout)
    assert service["name"] == SERVICE and len(service["endpoints"]) >= 2
    denied = subprocess.run(
        [grpcurl(), "-plaintext", admin_stack.admin_target, "controlplane.admin.v1.Admin/GetStatus"], capture_output=True, text=True, timeout=30
    )
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr


def test_cli_tables_and_json(admin_stack: DemoStack, edge: EnvoyProcess) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "controlplane", *args, "--admin", admin_stack.admin_target],
            capture_output=True, text=True, timeout=30, env={**os.environ, "CONTROLPLANE_ADMIN_TOKEN": TOKEN},
        )

    services = cli("services")
    assert services.returncode == 0, services.stderr
    assert "routeguide" in services.stdout and "ERROR: task definition broken:1" in services.stdout
    proxies = json.loads(cli("proxies", "--json").stdout)
    assert any(p["node_id"] == "edge-admin" for p in proxies["proxies"])
    status = cli("status")
    assert "admin" in status.stdout and "VIEW AGE" in status.stdout
    config = json.loads(cli("config", "edge-admin", "--json").stdout)
    assert {r["type"] for r in config["resources"]} == {"CDS", "EDS", "LDS", "RDS"}
    missing = cli("config", "ghost")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    # Each stream is a row of its own: node, stream id, identity ("-" when xDS is not authenticated).
    table = cli("proxies").stdout.splitlines()
    assert table[0].split()[:4] == ["NODE", "STREAM", "IDENTITY", "ROLE"]
    assert any(row.split()[0] == "edge-admin" and row.split()[2] == "-" for row in table[1:])


def test_prometheus_metrics(admin_stack: DemoStack, edge: EnvoyProcess) -> None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin_stack.metrics_port}/metrics", timeout=5).read().decode()
    assert 'controlplane_connected_proxies{role="edge"}' in text  # the role's kind: a bounded label, no addresses
    assert "edge/127.0.0.1" not in text
    assert 'controlplane_build_info{python=' in text and "process_cpu_seconds_total" in text
    assert 'controlplane_xds_pushes_total{type="CDS"}' in text
    assert 'controlplane_ecs_api_calls_total{cluster="admin",operation="DescribeTasks"}' in text
    assert 'controlplane_ecs_view_age_seconds{cluster="admin"}' in text
    assert "controlplane_services_with_errors 1.0" in text
