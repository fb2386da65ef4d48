"""TLS between Envoy and the control plane (xDS, with client certificates), and mTLS on the admin
API; certificates made with openssl for loopback names."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from controlplane.proxy.bootstrap import XdsAddress, XdsTls, edge_bootstrap, sidecar_bootstrap
from controlplane.demo.envoy import EnvoyProcess, envoy_binary
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc

from .pki import Pki

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]
SERVICE = "routeguide"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    authority = Pki(tmp_path_factory.mktemp("pki"))
    authority.issue("controlplane")
    # The edge Envoy's certificate names the identity it may claim (docs/security.md).
    authority.issue("envoy", uris=["spiffe://ecs.local/ecs/edge/edge-tls"])
    authority.issue("operator")
    return authority.directory


@pytest.fixture(scope="module")
def tls_stack(pki: Path) -> Iterator[DemoStack]:
    with DemoStack(cluster="tls", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service(SERVICE, stack.register(), 2)
        stack.wait_for_running(SERVICE, 2)
        stack.start_control_plane(
            "--xds-tls-cert", str(pki / "controlplane.crt"), "--xds-tls-key", str(pki / "controlplane.key"),
            "--xds-tls-client-ca", str(pki / "ca.crt"),
            "--admin-tls-cert", str(pki / "controlplane.crt"), "--admin-tls-key", str(pki / "controlplane.key"),
            "--admin-tls-client-ca", str(pki / "ca.crt"),
        )
        yield stack


def test_envoy_gets_its_config_over_mutual_tls(tls_stack: DemoStack, pki: Path) -> None:
    tls = XdsTls(str(pki / "ca.crt"), str(pki / "envoy.crt"), str(pki / "envoy.key"), sni="localhost")
    listen_port = free_port()
    config = edge_bootstrap(
        node_id="edge-tls", xds=[XdsAddress("127.0.0.1", tls_stack.xds_port)], listen_address="127.0.0.1",
        listen_port=listen_port, tls=tls,
    )
    envoy = EnvoyProcess("edge-tls", tls_stack.xds_port, tls_stack.work_dir, listen_port=listen_port, config=config)
    tls_stack.envoys.append(envoy)
    envoy.start()
    envoy.wait_for_hosts(SERVICE, tls_stack.addresses(tls_stack.running_tasks(SERVICE)), timeout=20)


def test_a_proxy_without_a_client_certificate_gets_nothing(tls_stack: DemoStack, pki: Path) -> None:
    tls = XdsTls(str(pki / "ca.crt"), sni="localhost")  # verifies the server, presents no certificate
    listen_port = free_port()
    config = edge_bootstrap(
        node_id="edge-anonymous", xds=[XdsAddress("127.0.0.1", tls_stack.xds_port)], listen_address="127.0.0.1",
        listen_port=listen_port, tls=tls,
    )
    envoy = EnvoyProcess("edge-anonymous", tls_stack.xds_port, tls_stack.work_dir, listen_port=listen_port, config=config)
    tls_stack.envoys.append(envoy)
    envoy.start()
    import time

    time.sleep(2.0)
    assert not envoy.hosts(SERVICE)
    assert "edge-anonymous" not in tls_stack.control_plane_log_text()


def test_admin_api_requires_a_client_certificate(tls_stack: DemoStack, pki: Path) -> None:
    root = (pki / "ca.crt").read_bytes()
    options = [("grpc.ssl_target_name_override", "localhost")]
    with_cert = grpc.ssl_channel_credentials(root, (pki / "operator.key").read_bytes(), (pki / "operator.crt").read_bytes())
    with grpc.secure_channel(tls_stack.admin_target, with_cert, options=options) as channel:
        status = admin_pb2_grpc.AdminStub(channel).GetStatus(api.GetStatusRequest(), timeout=10)
        assert status.ready and status.services == 1
    without = grpc.ssl_channel_credentials(root)
    with grpc.secure_channel(tls_stack.admin_target, without, options=options) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            admin_pb2_grpc.AdminStub(channel).GetStatus(api.GetStatusRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_every_generated_bootstrap_passes_envoy_validation(pki: Path, tmp_path: Path) -> None:
    tls = XdsTls(str(pki / "ca.crt"), str(pki / "envoy.crt"), str(pki / "envoy.key"), sni="controlplane.internal")
    xds = [XdsAddress("127.0.0.1", 18000), XdsAddress("127.0.0.2", 18000)]
    configs = {
        "edge": edge_bootstrap(node_id="e", xds=xds, listen_port=10000),
        "edge-tls-dns": edge_bootstrap(node_id="e", xds=[XdsAddress("localhost", 18000)], listen_port=10000, tls=tls),
        "sidecar": sidecar_bootstrap(node_id="s", xds=xds, service="orders"),
        "sidecar-inbound-tls": sidecar_bootstrap(node_id="s", xds=xds, service="orders", inbound_port=15000, app_port=8080, tls=tls),
    }
    for name, config in configs.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{name}: {result.stdout[-1500:]}{result.stderr[-1500:]}"
    # The CLI prints the same thing.
    printed = subprocess.run(
        [sys.executable, "-m", "controlplane", "bootstrap", "--role", "sidecar", "--service", "orders", "--node-id", "s",
         "--xds", "127.0.0.1:18000", "--xds-tls-ca", str(pki / "ca.crt")],
        capture_output=True, text=True, timeout=30,
    )
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["static_resources"]["clusters"][0]["transport_socket"]["name"] == "envoy.transport_sockets.tls"


def test_cli_reaches_the_mtls_admin_api_and_explains_a_missing_ca(tls_stack: DemoStack, pki: Path) -> None:
    base = [sys.executable, "-m", "controlplane", "status", "--admin", tls_stack.admin_target, "--timeout", "5"]
    ok = subprocess.run(
        base + ["--tls-ca", str(pki / "ca.crt"), "--tls-cert", str(pki / "operator.crt"), "--tls-key", str(pki / "operator.key")],
        capture_output=True, text=True, timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ready=true" in ok.stdout and "tls" in ok.stdout
    plain = subprocess.run(base, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    (line,) = [line for line in plain.stderr.splitlines() if line.strip()]
    assert "UNAVAILABLE" in line and "--tls-ca" in line
