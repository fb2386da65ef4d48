"""What an operator sees: Envoy's standard CSDS on the admin port, and the web dashboard in a real browser
(Debian's Chromium driven by Playwright), both against a running control plane with real Envoys."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import grpc
import pytest
from envoy.admin.v3 import config_dump_shared_pb2 as dump
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, string_pb2

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack

pytestmark = pytest.mark.integration

TOKEN = "operator-token"
AUTH = [("authorization", f"Bearer {TOKEN}")]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def stack() -> Iterator[DemoStack]:
    with DemoStack(cluster="operator", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service("b", stack.register(family="b", service="b", labels={"xds.route.hosts": "b.local"}), 2)
        stack.create_service("a", stack.register(family="a", service="a", labels={"xds.route.hosts": "a.local", "xds.upstreams": "b"}), 1)
        broken = stack.register(family="broken", service="broken", labels={"xds.protocol": "carrier-pigeon", "xds.route.hosts": "broken.local"})
        stack.create_service("broken", broken, 1)
        for name, count in (("b", 2), ("a", 1), ("broken", 1)):
            stack.wait_for_running(name, count)
        stack.start_control_plane("--admin-token", TOKEN)
        yield stack


@pytest.fixture(scope="module")
def edge(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-op")
    envoy.wait_for_hosts("b", stack.addresses(stack.running_tasks("b")), timeout=20)
    return envoy


@pytest.fixture(scope="module")
def sidecar(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_sidecar("sidecar-a", "a")
    envoy.wait_for_hosts("b", stack.addresses(stack.running_tasks("b")), timeout=20)
    return envoy


@pytest.fixture(scope="module")
def csds(stack: DemoStack) -> Iterator[csds_pb2_grpc.ClientStatusDiscoveryServiceStub]:
    with grpc.insecure_channel(stack.admin_target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        yield csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)


def wait_for(probe: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def fetch(stub: csds_pb2_grpc.ClientStatusDiscoveryServiceStub, node_id: str) -> list[csds_pb2.ClientConfig]:
    request = csds_pb2.ClientStatusRequest(node_matchers=[node_pb2.NodeMatcher(node_id=string_pb2.StringMatcher(exact=node_id))])
    return list(stub.FetchClientStatus(request, metadata=AUTH, timeout=5).config)


def envoy_versions(envoy: EnvoyProcess) -> dict[str, str]:
    """Envoy's own view: the version_info of its dynamic clusters and listeners in /config_dump."""
    found: dict[str, str] = {}
    for section in envoy.config_dump()["configs"]:
        kind = section["@type"].rsplit(".", 1)[-1]
        if kind == "ClustersConfigDump":
            found["CDS"] = section.get("version_info", "")
        if kind == "ListenersConfigDump":
            found["LDS"] = section.get("version_info", "")
    return found


@pytest.mark.parametrize("which", ["edge", "sidecar"])
def test_csds_reports_what_each_envoy_acked(stack: DemoStack, edge: EnvoyProcess, sidecar: EnvoyProcess, csds: Any, which: str) -> None:
    envoy = edge if which == "edge" else sidecar
    node_id = "edge-op" if which == "edge" else "sidecar-a"

    def synced() -> Any:
        configs = fetch(csds, node_id)
        entries = [e for c in configs for e in c.generic_xds_configs]
        types = {e.type_url.rsplit(".", 1)[-1] for e in entries}
        if len(configs) == 1 and {"Cluster", "Listener"} <= types and all(e.client_status == dump.ACKED for e in entries):
            return configs[0]
        return None

    config = wait_for(synced)
    assert config, f"CSDS never showed {node_id} with every resource ACKed: {fetch(csds, node_id)}"
    assert config.node.id == node_id
    versions = envoy_versions(envoy)
    by_type = {e.type_url.rsplit(".", 1)[-1]: e for e in config.generic_xds_configs}
    assert by_type["Cluster"].version_info == versions["CDS"]
    assert by_type["Listener"].version_info == versions["LDS"]
    assert all(e.config_status == csds_pb2.SYNCED for e in config.generic_xds_configs)
    assert any(e.name == "b" and e.xds_config.type_url.endswith("Cluster") for e in config.generic_xds_configs)


def test_csds_shows_a_nacked_listener_with_envoys_message(stack: DemoStack, csds: Any) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port = blocker.getsockname()[1]
        stack.start_envoy("edge-op-nack", listen_port=port)

        def nacked() -> Any:
            return [
                e for c in fetch(csds, "edge-op-nack") for e in c.generic_xds_configs
                if e.type_url.endswith("Listener") and e.client_status == dump.NACKED
            ]

        entries = wait_for(nacked)
        assert entries, "CSDS never showed the NACKed listener"
        assert entries[0].config_status == csds_pb2.ERROR
        assert str(port) in entries[0].error_state.details
        assert entries[0].error_state.version_info == entries[0].version_info
    finally:
        blocker.close()


def grpcurl() -> str:
    found = Path(sys.executable).parent / "grpcurl"
    return str(found) if found.exists() else (shutil.which("grpcurl") or "grpcurl")


def test_csds_through_grpcurl_and_reflection(stack: DemoStack, edge: EnvoyProcess) -> None:
    base = [grpcurl(), "-plaintext", "-H", f"authorization: Bearer {TOKEN}"]
    listed = subprocess.run(base + [stack.admin_target, "list"], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert "envoy.service.status.v3.ClientStatusDiscoveryService" in listed.stdout.split()
    request = {"node_matchers": [{"node_id": {"exact": "edge-op"}}], "exclude_resource_contents": True}
    got = subprocess.run(
        base + ["-d", json.dumps(request), stack.admin_target, "envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"],
        capture_output=True, text=True, timeout=30,
    )
    assert got.returncode == 0, got.stderr
    (config,) = json.loads(got.stdout)["config"]
    assert config["node"]["id"] == "edge-op"
    assert {e["client_status"] for e in config["generic_xds_configs"]} == {"ACKED"}
    assert not any("xds_config" in e for e in config["generic_xds_configs"])
    denied = subprocess.run(
        [grpcurl(), "-plaintext", "-d", "{}", stack.admin_target, "envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"],
        capture_output=True, text=True, timeout=30,
    )
    assert denied.returncode != 0 and "Unauthenticated" in denied.stderr


# -- the dashboard, in a real browser ----------------------------------------------------------


@pytest.fixture(scope="module")
def page(stack: DemoStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            page.goto(f"http://127.0.0.1:{stack.dashboard_port}/?token={TOKEN}")
            yield page
        finally:
            browser.close()


def test_dashboard_refuses_a_browser_without_the_token(stack: DemoStack) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{stack.dashboard_port}/api/state", timeout=5)
    assert refused.value.code == 401


def test_dashboard_shows_services_endpoints_and_label_errors(stack: DemoStack, page: Any) -> None:
    assert "token=" not in page.url, "the token should be traded for a cookie and leave the address bar"
    for address in stack.addresses(stack.running_tasks("b")):
        page.locator(f'[data-service="b"] [data-endpoint="{address}"]').wait_for()
    broken = page.locator('[data-service="broken"]')
    broken.wait_for()
    assert "disabled" in broken.inner_text()
    assert "carrier-pigeon" in broken.inner_text() or "expected one of grpc, http2, http1, tcp" in broken.inner_text()
    assert page.locator("#ready").inner_text() == "ready"
    cluster_row = page.locator('[data-cluster="operator"]').inner_text()
    assert "never read" not in cluster_row


def test_dashboard_shows_a_new_task_live(stack: DemoStack, page: Any) -> None:
    before = stack.addresses(stack.running_tasks("b"))
    stack.ecs.update_service(cluster=stack.cluster, service="b", desiredCount=3)
    after = stack.addresses(stack.wait_for_running("b", 3))
    (new,) = after - before
    started = time.monotonic()
    page.locator(f'[data-service="b"] [data-endpoint="{new}"]').wait_for(timeout=10_000)
    # Live: the page was not reloaded; the new endpoint arrived over the event stream.
    assert time.monotonic() - started < 10


def test_dashboard_shows_proxies_and_a_nack(stack: DemoStack, edge: EnvoyProcess, page: Any) -> None:
    page.locator('[data-proxy="edge-op"][data-type="CDS"]').wait_for()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        port = blocker.getsockname()[1]
        stack.start_envoy("edge-dash-nack", listen_port=port)
        row = page.locator('[data-proxy="edge-dash-nack"][data-type="LDS"] td.nack')
        row.wait_for(timeout=15_000)
        assert str(port) in row.inner_text()
    finally:
        blocker.close()


def test_cli_wrong_token_and_readiness_exit_codes(stack: DemoStack) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "controlplane", *args, "--admin", stack.admin_target, "--timeout", "5"],
                              capture_output=True, text=True, timeout=60)

    wrong = cli("status", "--token", "not-it")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    (line,) = [line for line in wrong.stderr.splitlines() if line.strip()]
    assert "UNAUTHENTICATED" in line and "--token" in line
    ready = cli("status", "--token", TOKEN)
    assert ready.returncode == 0, ready.stderr
    assert "never read" not in ready.stdout
