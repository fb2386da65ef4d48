"""Zone goldens. Bootstraps: what `controlplane bootstrap` prints for zone-aware proxies (bootstraps/*.json),
and each one passes `envoy --mode validate`. Regenerate with UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from controlplane.cli.main import main
from controlplane.demo.envoy import envoy_binary

from .test_golden import UPDATE

BOOTSTRAPS = Path(__file__).with_name("bootstraps")
COMMON = ["bootstrap", "--xds", "127.0.0.1:18000", "--admin-port", "0"]
CASES = {
    "sidecar-zone-aware": ["--role", "sidecar", "--node-id", "prod/0a1b", "--service", "caller", "--zone", "eu-west-1a", "--zone-aware"],
    "edge-zone-aware": ["--role", "edge", "--node-id", "edge-1", "--listen-port", "10000", "--zone", "eu-west-1b", "--local-service", "edgefleet"],
    "grpc-client-zone": ["--role", "grpc-client", "--node-id", "client-1", "--service", "caller", "--zone", "eu-west-1a"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bootstrap_golden(case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main([*COMMON[:1], *CASES[case], *COMMON[1:]]) == 0
    actual = capsys.readouterr().out
    path = BOOTSTRAPS / f"{case}.json"
    if UPDATE:
        path.write_text(actual)
    assert path.exists(), f"{path.name} is missing: run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_text(), f"bootstraps/{path.name} differs; if intended, regenerate with UPDATE_GOLDEN=1"
    config = json.loads(actual)
    if case.startswith("grpc-client"):
        assert config["node"]["locality"] == {"zone": "eu-west-1a"}
        return
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_zone_aware_proxy_names_its_zone_and_fleet_to_envoy_and_the_control_plane() -> None:
    sidecar = json.loads((BOOTSTRAPS / "sidecar-zone-aware.json").read_text())
    assert sidecar["node"]["locality"] == {"zone": "eu-west-1a"}
    assert sidecar["node"]["metadata"]["local_service"] == "caller"
    assert sidecar["cluster_manager"] == {"local_cluster_name": "local_cluster"}
    (local,) = [c for c in sidecar["static_resources"]["clusters"] if c["name"] == "local_cluster"]
    assert local["eds_cluster_config"]["service_name"] == "caller"
    edge = json.loads((BOOTSTRAPS / "edge-zone-aware.json").read_text())
    assert (edge["node"]["locality"], edge["node"]["metadata"]["local_service"]) == ({"zone": "eu-west-1b"}, "edgefleet")


def test_the_zone_golden_files_show_what_zone_aware_proxies_rely_on() -> None:
    """Facts read from the zones_zone_aware goldens, so a careless regeneration cannot hide them."""
    from controlplane.xds.types import TypeUrl

    from .test_golden import golden

    def lb(role: str, service: str) -> dict[str, object]:
        return golden("zones_zone_aware", role, TypeUrl.CLUSTER)[service]["common_lb_config"]  # type: ignore[no-any-return]

    for role in ("sidecar-zone-aware", "edge-zone-aware"):
        assert lb(role, "backend")["zone_aware_lb_config"] == {"min_cluster_size": "2"}
        assert lb(role, "plain")["zone_aware_lb_config"] == {"routing_enabled": {}}  # 0 %: Envoy's default zone routing off
        assert "zone_aware_lb_config" not in lb(role, "even") and "locality_weighted_lb_config" in lb(role, "even")
    assert "zone_aware_lb_config" not in lb("sidecar", "plain")
    assert set(golden("zones_zone_aware", "sidecar-zone-aware", TypeUrl.ENDPOINT)) == {"backend", "caller", "even", "plain"}
    assert "caller" not in golden("zones_zone_aware", "sidecar", TypeUrl.ENDPOINT)
    assert "edgefleet" in golden("zones_zone_aware", "edge-zone-aware", TypeUrl.ENDPOINT)


@pytest.mark.parametrize("case", sorted(case for case in CASES if not case.startswith("grpc-client")))
def test_the_golden_envoy_bootstraps_retry_the_control_plane_at_most_2_s_apart(case: str) -> None:
    """Read from the files, so a careless regeneration cannot hide a slower reconnect (issue 14). The
    gRPC client's bootstrap has no such field: gRPC's xDS client backs off 1 s x1.6 up to 120 s."""
    config = json.loads((BOOTSTRAPS / f"{case}.json").read_text())
    (service,) = config["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service["envoy_grpc"]["retry_policy"]["retry_back_off"] == {"base_interval": "0.25s", "max_interval": "2.0s"}
