"""xDS identities end to end: a proxy whose certificate or token names service A gets A's sidecar
config (real Envoy) and is refused B's (real grpcio client, PERMISSION_DENIED)."""

from __future__ import annotations

import json
import shutil
import urllib.request
from typing import Iterator

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.proxy.bootstrap import XdsAddress, XdsTls, sidecar_bootstrap
from controlplane.xds.types import TypeUrl

from .pki import Pki

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")]
FRONTEND_TOKEN = "frontend-token-8f2d41c9a7"
ROUTEGUIDE_TOKEN = "routeguide-token-1c9e77b3"


def spiffe(service: str) -> str:
    return f"spiffe://ecs.local/ecs/sidecar/{service}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    authority = Pki(tmp_path_factory.mktemp("pki"))
    authority.issue("controlplane")
    authority.issue("frontend", uris=[spiffe("frontend")])
    authority.issue("routeguide", uris=[spiffe("routeguide")])
    authority.issue("plain")  # a certificate of the CA that names no identity: tokens say who it is
    return authority


@pytest.fixture(scope="module")
def stack(pki: Pki) -> Iterator[DemoStack]:
    tokens = pki.directory / "tokens.json"
    tokens.write_text(
        json.dumps(
            {
                "tokens": [
                    {"name": "frontend", "token": FRONTEND_TOKEN, "role": "sidecar", "service": "frontend"},
                    {"name": "routeguide", "token": ROUTEGUIDE_TOKEN, "role": "sidecar", "service": "routeguide"},
                ]
            }
        )
    )
    d = pki.directory
    with DemoStack(cluster="identity", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service("routeguide", stack.register(), 2)
        # frontend calls routeguide: its sidecar config lists routeguide's task addresses.
        frontend = stack.register(
            family="frontend", service="frontend", labels={"xds.upstreams": "routeguide", "xds.route.prefix": "/frontend.Frontend/"}
        )
        stack.create_service("frontend", frontend, 1)
        stack.wait_for_running("routeguide", 2)
        stack.wait_for_running("frontend", 1)
        stack.start_control_plane(
            "--xds-tls-cert", str(d / "controlplane.crt"), "--xds-tls-key", str(d / "controlplane.key"),
            "--xds-tls-client-ca", str(pki.ca), "--xds-tokens-file", str(tokens),
        )
        yield stack


def sidecar(stack: DemoStack, pki: Pki, node_id: str, certificate: str, token: str | None = None) -> EnvoyProcess:
    d = pki.directory
    tls = XdsTls(str(pki.ca), str(d / f"{certificate}.crt"), str(d / f"{certificate}.key"), sni="localhost")
    port = free_port()
    config = sidecar_bootstrap(
        node_id=node_id, xds=[XdsAddress("127.0.0.1", stack.xds_port)], service="frontend", outbound_port=port, tls=tls, token=token
    )
    envoy = EnvoyProcess(node_id, stack.xds_port, stack.work_dir, listen_port=port, config=config)
    stack.envoys.append(envoy)
    return envoy.start()


def identities(stack: DemoStack) -> dict[str, str]:
    with grpc.insecure_channel(stack.admin_target) as channel:
        proxies = admin_pb2_grpc.AdminStub(channel).ListProxies(api.ListProxiesRequest(), timeout=10).proxies
    return {p.node_id: p.identity for p in proxies}


def test_a_sidecar_whose_certificate_names_frontend_gets_the_frontend_config(stack: DemoStack, pki: Pki) -> None:
    envoy = sidecar(stack, pki, "frontend-cert", "frontend")
    envoy.wait_for_hosts("routeguide", stack.addresses(stack.running_tasks("routeguide")), timeout=20)
    assert identities(stack)["frontend-cert"] == spiffe("frontend")


def test_a_sidecar_whose_token_names_frontend_gets_the_frontend_config(stack: DemoStack, pki: Pki) -> None:
    envoy = sidecar(stack, pki, "frontend-token", "plain", token=FRONTEND_TOKEN)
    envoy.wait_for_hosts("routeguide", stack.addresses(stack.running_tasks("routeguide")), timeout=20)
    assert identities(stack)["frontend-token"] == "token:frontend"


def claim_frontend(stack: DemoStack, pki: Pki, certificate: str, token: str | None = None) -> grpc.RpcError:
    """Ask for the sidecar config of frontend over mTLS with `certificate` (and `token`)."""
    d = pki.directory
    credentials = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), (d / f"{certificate}.key").read_bytes(), (d / f"{certificate}.crt").read_bytes()
    )
    request = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER.value)
    request.node.id = f"impostor-{certificate}"
    request.node.metadata.update({"role": "sidecar", "service": "frontend"})
    metadata = [("authorization", f"Bearer {token}")] if token else []
    target = f"127.0.0.1:{stack.xds_port}"
    with grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(iter([request]), metadata=metadata, timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            next(call)
    return caught.value


def test_a_certificate_naming_routeguide_is_refused_the_frontend_config(stack: DemoStack, pki: Pki) -> None:
    error = claim_frontend(stack, pki, "routeguide")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert error.details() == (  # type: ignore[attr-defined]
        "node 'impostor-routeguide' claims sidecar of frontend, which its credentials do not allow: "
        f"{spiffe('routeguide')} may claim sidecar of routeguide"
    )
    refused = [e for e in stack.control_plane_log() if e.get("event") == "xds.permission_denied"]
    assert any(e["node_id"] == "impostor-routeguide" and e["identities"] == [spiffe("routeguide")] for e in refused)
    assert "impostor-routeguide" not in identities(stack)


def test_a_token_naming_routeguide_is_refused_the_frontend_config(stack: DemoStack, pki: Pki) -> None:
    error = claim_frontend(stack, pki, "plain", token=ROUTEGUIDE_TOKEN)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "token:routeguide may claim sidecar of routeguide" in (error.details() or "")  # type: ignore[attr-defined]


def test_a_certificate_naming_nobody_without_a_token_is_refused(stack: DemoStack, pki: Pki) -> None:
    error = claim_frontend(stack, pki, "plain")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert f"expected a SAN like {spiffe('orders')}" in (error.details() or "")  # type: ignore[attr-defined]
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_port}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        metrics = response.read().decode()
    refused = [line for line in metrics.splitlines() if line.startswith('controlplane_xds_streams_refused_total{reason="permission_denied"}')]
    logged = [e for e in stack.control_plane_log() if e.get("event") == "xds.permission_denied"]
    # Every refusal is both logged and counted.
    assert refused and float(refused[0].split()[-1]) == len(logged) >= 1
