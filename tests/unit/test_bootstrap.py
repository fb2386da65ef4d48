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


def _variants() -> dict[str, dict[str, object]]:
    from controlplane.proxy.bootstrap import ProxyOptions, sidecar_bootstrap

    xds = [XdsAddress.parse("127.0.0.1:18000")]
    zoned = ProxyOptions(zone="us-east-1a", local_service="edgefleet", max_downstream_connections=1000, max_heap_bytes=1 << 30)
    return {
        "edge": edge_bootstrap(node_id="e", xds=xds, listen_port=10000, listen_address="127.0.0.1", admin_port=0),
        "edge-zone-aware": edge_bootstrap(node_id="e", xds=xds, listen_port=10000, listen_address="127.0.0.1", admin_port=0, proxy=zoned),
        "sidecar": sidecar_bootstrap(node_id="s", xds=xds, service="orders", admin_port=0),
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


def test_bootstraps_reconnect_fast_and_limit_downstream_connections() -> None:
    bootstrap = json_format.ParseDict(_variants()["edge"], bootstrap_pb2.Bootstrap())
    backoff = bootstrap.dynamic_resources.ads_config.grpc_services[0].envoy_grpc.retry_policy.retry_back_off
    assert (backoff.base_interval.ToMilliseconds(), backoff.max_interval.ToMilliseconds()) == (250, 2000)
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
