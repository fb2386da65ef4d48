"""Bootstrap files for edge Envoys: accepted by Envoy itself; bad --xds values explained."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

from controlplane.demo.envoy import envoy_binary
from controlplane.proxy.bootstrap import XdsAddress, edge_bootstrap
from controlplane.errors import SettingsError
from controlplane.proxy.roles import EdgeRole, role_from_metadata

ENVOY = envoy_binary()  # found like the demo finds it: beside this Python, else on PATH


def test_edge_bootstrap_passes_envoy_validation(tmp_path: Path) -> None:
    config = edge_bootstrap(
        node_id="edge-1",
        xds=[XdsAddress.parse("127.0.0.1:18000"), XdsAddress.parse("127.0.0.2:18000")],
        listen_port=10000,
        listen_address="127.0.0.1",
        admin_port=0,
    )
    path = tmp_path / "edge.json"
    path.write_text(json.dumps(config))

    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{path}' OK" in result.stdout + result.stderr


def test_the_bootstrap_node_describes_the_role_the_server_derives() -> None:
    config = edge_bootstrap(node_id="edge-1", xds=[XdsAddress.parse("xds.internal:18000")], listen_port=10443)
    bootstrap = json_format.ParseDict(config, bootstrap_pb2.Bootstrap())

    metadata = json_format.MessageToDict(bootstrap.node.metadata)
    assert role_from_metadata(bootstrap.node.id, metadata) == EdgeRole(listen_address="0.0.0.0", listen_port=10443)
    (xds_cluster,) = bootstrap.static_resources.clusters
    # A host name needs DNS resolution; the ADS stream goes to it over HTTP/2.
    assert xds_cluster.type == xds_cluster.STRICT_DNS
    address = xds_cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address
    assert (address.address, address.port_value) == ("xds.internal", 18000)
    assert bootstrap.dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name == xds_cluster.name


@pytest.mark.parametrize(
    "text,host,port",
    [("127.0.0.1:18000", "127.0.0.1", 18000), ("xds.internal:1", "xds.internal", 1), ("[::1]:65535", "::1", 65535)],
)
def test_xds_addresses(text: str, host: str, port: int) -> None:
    assert XdsAddress.parse(text) == XdsAddress(host, port)


@pytest.mark.parametrize("text", ["localhost", "127.0.0.1", ":18000", "127.0.0.1:", "host:0", "host:65536", "host:http", "host:-1", ""])
def test_bad_xds_addresses(text: str) -> None:
    with pytest.raises(SettingsError) as caught:
        XdsAddress.parse(text)
    assert str(caught.value) == f"--xds {text!r}: expected HOST:PORT, e.g. 127.0.0.1:18000"


def test_bootstrap_needs_an_xds_address() -> None:
    with pytest.raises(SettingsError, match=r"^at least one --xds HOST:PORT is required$"):
        edge_bootstrap(node_id="edge-1", xds=[], listen_port=10000)


@pytest.mark.parametrize("kwargs,message", [({"listen_port": 70000}, "--listen-port 70000: expected an integer 0-65535"),
                                            ({"listen_port": 10000, "admin_port": -1}, "--admin-port -1: expected an integer 0-65535")])
def test_bootstrap_port_errors(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        edge_bootstrap(node_id="edge-1", xds=[XdsAddress("127.0.0.1", 18000)], **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def bootstrap_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "CONTROLPLANE_XDS_TOKEN"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "controlplane", "bootstrap", "--node-id", "orders-1", "--xds", "127.0.0.1:18000", *args],
        capture_output=True, text=True, timeout=60, env=environment,
    )


def test_the_xds_token_comes_from_a_file_or_the_environment_and_envoy_sends_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("orders-token-0123456789\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("not read by validate")
    from_file = bootstrap_cli("--role", "sidecar", "--service", "orders", "--xds-token-file", str(token), "--xds-tls-ca", str(ca))
    assert from_file.returncode == 0, from_file.stderr
    config = json.loads(from_file.stdout)
    (grpc_service,) = config["dynamic_resources"]["ads_config"]["grpc_services"]
    assert grpc_service["initial_metadata"] == [{"key": "authorization", "value": "Bearer orders-token-0123456789"}]
    from_env = bootstrap_cli("--role", "edge", "--listen-port", "10000", env={"CONTROLPLANE_XDS_TOKEN": "edge-token-0123456789"})
    assert from_env.returncode == 0, from_env.stderr
    assert "travels in plaintext" in from_env.stderr  # no --xds-tls-ca: said, not refused
    (grpc_service,) = json.loads(from_env.stdout)["dynamic_resources"]["ads_config"]["grpc_services"]
    assert grpc_service["initial_metadata"] == [{"key": "authorization", "value": "Bearer edge-token-0123456789"}]


def _variants() -> dict[str, dict[str, object]]:
    from controlplane.proxy.bootstrap import ProxyOptions, sidecar_bootstrap

    xds = [XdsAddress.parse("127.0.0.1:18000")]
    zoned = ProxyOptions(zone="us-east-1a", local_service="edgefleet", max_downstream_connections=1000, max_heap_bytes=1 << 30)
    return {
        "edge": edge_bootstrap(node_id="e", xds=xds, listen_port=10000, listen_address="127.0.0.1", admin_port=0),
        "edge-zone-aware": edge_bootstrap(node_id="e", xds=xds, listen_port=10000, listen_address="127.0.0.1", admin_port=0, proxy=zoned),
        "sidecar": sidecar_bootstrap(node_id="s", xds=xds, service="orders", admin_port=0),
        "sidecar-token": sidecar_bootstrap(node_id="s", xds=xds, service="orders", admin_port=0, token="orders-token-0123456789"),
        "sidecar-inbound-zone-aware": sidecar_bootstrap(
            node_id="s", xds=xds, service="orders", inbound_port=15000, app_port=8080, admin_port=0,
            proxy=ProxyOptions(zone="us-east-1b", local_service="orders"),
        ),
    }


@pytest.mark.parametrize("variant", sorted(_variants()))
def test_every_bootstrap_variant_passes_envoy_validation(variant: str, tmp_path: Path) -> None:
    path = tmp_path / f"{variant}.json"
    path.write_text(json.dumps(_variants()[variant]))
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_token_flag_on_the_command_line_and_none_for_proxyless_clients(tmp_path: Path) -> None:
    argv = bootstrap_cli("--role", "edge", "--listen-port", "10000", "--xds-token", "visible-in-proc-0123")
    assert argv.returncode == 2 and "unrecognized arguments: --xds-token" in argv.stderr
    token = tmp_path / "token"
    token.write_text("orders-token-0123456789")
    proxyless = bootstrap_cli("--role", "grpc-client", "--service", "orders", "--xds-token-file", str(token))
    assert proxyless.returncode == 2 and "Traceback" not in proxyless.stderr
    assert proxyless.stderr.strip() == (
        "controlplane: proxyless gRPC clients authenticate with a client certificate (--xds-tls-cert, --xds-tls-key), not a token"
    )


def test_envoy_verifies_the_control_planes_san() -> None:
    from controlplane.proxy.bootstrap import XdsTls

    by_sni = XdsTls("ca.crt", sni="xds.internal").transport_socket()
    by_uri = XdsTls("ca.crt", sni="xds.internal", server_san="spiffe://ecs.local/controlplane").transport_socket()

    def matchers(socket: dict[str, object]) -> object:
        return socket["typed_config"]["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"]  # type: ignore[index]

    assert matchers(by_sni) == [{"san_type": "DNS", "matcher": {"exact": "xds.internal"}}]
    assert matchers(by_uri) == [{"san_type": "URI", "matcher": {"exact": "spiffe://ecs.local/controlplane"}}]


def xds_backoff_ms(config: dict[str, object]) -> tuple[int, int]:
    """The reconnect backoff (base, max) Envoy uses on its ADS gRPC service, as Envoy parses it."""
    bootstrap = json_format.ParseDict(config, bootstrap_pb2.Bootstrap())
    (service,) = bootstrap.dynamic_resources.ads_config.grpc_services
    backoff = service.envoy_grpc.retry_policy.retry_back_off
    return backoff.base_interval.ToMilliseconds(), backoff.max_interval.ToMilliseconds()


@pytest.mark.parametrize("variant", sorted(_variants()))
def test_every_envoy_bootstrap_retries_the_control_plane_at_most_2_s_apart(variant: str) -> None:
    # Without it Envoy backs off up to 30 s; with it a restarted control plane is found again within
    # 2 s (issue 14; measured by bench/reconnect.py, docs/benchmarks.md).
    assert xds_backoff_ms(_variants()[variant]) == (250, 2000)


def test_bootstraps_limit_downstream_connections() -> None:
    bootstrap = json_format.ParseDict(_variants()["edge"], bootstrap_pb2.Bootstrap())
    (monitor,) = bootstrap.overload_manager.resource_monitors
    assert monitor.name == "envoy.resource_monitors.global_downstream_max_connections"
    assert not bootstrap.HasField("cluster_manager") and not bootstrap.node.HasField("locality")


def test_zone_aware_bootstraps_name_their_zone_and_local_cluster() -> None:
    bootstrap = json_format.ParseDict(_variants()["edge-zone-aware"], bootstrap_pb2.Bootstrap())
    assert bootstrap.node.locality.zone == "us-east-1a"
    assert bootstrap.cluster_manager.local_cluster_name == "local_cluster"
    local = next(c for c in bootstrap.static_resources.clusters if c.name == "local_cluster")
    assert local.eds_cluster_config.service_name == "edgefleet"
    assert [m.name for m in bootstrap.overload_manager.resource_monitors][1] == "envoy.resource_monitors.fixed_heap"


def test_a_local_service_without_a_zone_is_explained() -> None:
    from controlplane.proxy.bootstrap import ProxyOptions

    with pytest.raises(SettingsError, match="needs --zone"):
        edge_bootstrap(node_id="e", xds=[XdsAddress("127.0.0.1", 1)], listen_port=1, proxy=ProxyOptions(local_service="x"))
