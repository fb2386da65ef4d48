"""Golden files: ECS task definitions and tasks (testdata/*/input.yaml) -> Mesh -> Envoy resources
for each role the scenario names, one file per xDS type (testdata/<scenario>/<role>/*.yaml).

Regenerate with UPDATE_GOLDEN=1 and review the diff like code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import json_format

from controlplane.cache.snapshot import build_snapshot
from controlplane.demo.envoy import envoy_binary
from controlplane.model.build import build_mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import Resources, TranslationMemo, translate
from controlplane.xds.types import ORDER, TypeUrl
from unit.builders import cluster_state, task, task_definition

from .scenario import OUTPUT_FILES, TESTDATA, Scenario, as_yaml, load, names
from .static_bootstrap import static_bootstrap

ENVOY = envoy_binary()  # found like the demo finds it: beside this Python, else on PATH
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SCENARIOS = {name: load(name) for name in names()}
CASES = [(scenario, role) for scenario in SCENARIOS.values() for role in scenario.roles]


def case_id(case: tuple[Scenario, str]) -> str:
    return f"{case[0].name}/{case[1]}"


def translated(scenario: Scenario, role_name: str) -> Resources:
    return translate(scenario.mesh(), scenario.roles[role_name])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_golden(case: tuple[Scenario, str]) -> None:
    scenario, role_name = case
    resources = translated(scenario, role_name)
    assert set(resources.by_type) <= set(OUTPUT_FILES), "a new xDS type needs a golden file name in scenario.OUTPUT_FILES"
    for type_url in OUTPUT_FILES:
        path, actual = scenario.output(role_name, type_url), as_yaml(resources, type_url)
        if UPDATE:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual)
        assert path.exists(), f"{path.relative_to(TESTDATA)} is missing: run with UPDATE_GOLDEN=1 and review it"
        assert actual == path.read_text(), f"{path.relative_to(TESTDATA)} differs; if intended, regenerate with UPDATE_GOLDEN=1"


def test_every_output_belongs_to_a_role_of_its_scenario() -> None:
    """A role removed from an input must take its outputs with it (UPDATE_GOLDEN=1 removes them)."""
    orphans = []
    for scenario in SCENARIOS.values():
        for directory in (p for p in scenario.directory.iterdir() if p.is_dir()):
            if directory.name not in scenario.roles:
                if UPDATE:
                    shutil.rmtree(directory)
                orphans.append(f"{scenario.name}/{directory.name}")
    assert not orphans or UPDATE, f"outputs of roles no input names: {orphans}"
    assert {path.name for path in TESTDATA.iterdir() if path.is_dir()} == set(SCENARIOS), "a directory without input.yaml"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_input_is_valid(scenario: str) -> None:
    """An input the model rejects would test the error path, not the translation."""
    assert [p for p in SCENARIOS[scenario].mesh().problems if p.severity == "error"] == []


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_translation_is_deterministic(case: tuple[Scenario, str]) -> None:
    scenario, role_name = case
    first, second = translated(scenario, role_name), translated(scenario, role_name)
    assert serialized(first) == serialized(second)
    one, two = build_snapshot(first), build_snapshot(second)
    assert [one.version(t) for t in ORDER] == [two.version(t) for t in ORDER]


def serialized(resources: Resources) -> dict[TypeUrl, dict[str, bytes]]:
    return {t: {name: m.SerializeToString(deterministic=True) for name, m in resources.of(t).items()} for t in ORDER}


def test_a_memo_shared_by_every_scenario_and_role_changes_no_output() -> None:
    """What the cache does: one memo for the process, meshes one after another, every role."""
    memo = TranslationMemo()
    for _ in range(2):  # the second round is served from the memo
        for scenario in SCENARIOS.values():
            mesh = scenario.mesh()
            for role_name, role in scenario.roles.items():
                assert serialized(translate(mesh, role, memo)) == serialized(translate(mesh, role)), f"{scenario.name}/{role_name}"
    assert memo.size_bytes() > 0


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_envoy_accepts_the_generated_resources(case: tuple[Scenario, str], tmp_path: Path) -> None:
    scenario, role_name = case
    resources = translated(scenario, role_name)
    config = static_bootstrap(resources)
    assert len(config.static_resources.listeners) == len(resources.of(TypeUrl.LISTENER))
    path = tmp_path / "bootstrap.json"
    path.write_text(json_format.MessageToJson(config, preserving_proto_field_name=True))

    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)

    output = result.stdout + result.stderr
    assert result.returncode == 0 and "OK" in output, output


def golden(scenario: str, role: str, type_url: TypeUrl) -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(SCENARIOS[scenario].output(role, type_url).read_text())  # type: ignore[no-any-return]


def test_the_golden_files_show_what_users_rely_on() -> None:
    """A few facts read from the golden content, so a careless regeneration cannot hide them."""
    zones = golden("draining_two_zones", "edge", TypeUrl.ENDPOINT)["payments"]["endpoints"]
    assert [z["locality"]["zone"] for z in zones] == ["eu-west-1a", "eu-west-1b"]
    assert [
        [(e["endpoint"]["address"]["socket_address"]["address"], e["health_status"]) for e in z["lb_endpoints"]]
        for z in zones
    ] == [
        [("127.0.1.21", "HEALTHY"), ("127.0.1.22", "DRAINING")],
        [("127.0.2.21", "UNHEALTHY"), ("127.0.2.22", "DRAINING")],
    ]
    clusters = golden("grpc_and_http1", "edge", TypeUrl.CLUSTER)
    options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    assert "http2_protocol_options" in clusters["orders"]["typed_extension_protocol_options"][options]["explicit_http_config"]
    assert "http_protocol_options" in clusters["web"]["typed_extension_protocol_options"][options]["explicit_http_config"]
    endpoints = golden("grpc_and_http1", "edge", TypeUrl.ENDPOINT)
    assert endpoints["web"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"] == 32768
    routes = golden("grpc_and_http1", "edge", TypeUrl.ROUTE)
    hosts = {vh["name"]: (vh["domains"], [r["match"]["prefix"] for r in vh["routes"]]) for vh in routes["edge"]["virtual_hosts"]}
    assert hosts == {
        "_any_": (["*"], ["/status/"]),
        "api.example.com": (["api.example.com"], ["/orders.Orders/", "/status/"]),
        # A host's own routes come before the wildcard's: web's "/" takes www.example.com/status/ too,
        # so the wildcard's /status/ route, which could never match there, is left out.
        "www.example.com": (["www.example.com"], ["/"]),
    }


def test_the_role_golden_files_show_what_each_role_relies_on() -> None:
    # A sidecar gets exactly its declared upstreams and the clusters their routes split to.
    sidecar = golden("roles_upstreams", "sidecar", TypeUrl.CLUSTER)
    assert sorted(sidecar) == ["local_app", "orders", "orders-next", "pay", "pay@pay:6", "pay@pay:7", "routeguide", "web"]
    assert sidecar["local_app"]["type"] == "STATIC"
    outbound = golden("roles_upstreams", "sidecar", TypeUrl.ROUTE)["outbound"]["virtual_hosts"]
    # By name as authority, then by the path prefix an upstream declares, longest first.
    assert [vh["domains"] for vh in outbound] == [["orders"], ["pay"], ["routeguide"], ["web"], ["*"]]
    assert [r["match"]["prefix"] for r in outbound[-1]["routes"]] == ["/routeguide.RouteGuide/", "/orders.Orders/"]
    # A gRPC client's API listener is named after its target and carries no filter gRPC lacks.
    listeners = golden("roles_upstreams", "grpc-client", TypeUrl.LISTENER)
    assert sorted(listeners) == ["orders", "pay", "routeguide", "web"]
    filters = listeners["routeguide"]["api_listener"]["api_listener"]["http_filters"]
    assert [f["name"] for f in filters] == ["envoy.filters.http.router"]
    # A gRPC client's route splits like the edge's, and it gets every cluster the split names.
    client_routes = golden("roles_upstreams", "grpc-client", TypeUrl.ROUTE)
    split = client_routes["orders"]["virtual_hosts"][0]["routes"][0]["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in split] == [("orders", 90), ("orders-next", 10)]
    assert {"orders-next", "pay@pay:6", "pay@pay:7"} <= set(golden("roles_upstreams", "grpc-client", TypeUrl.CLUSTER))
    # It gets the policy gRPC applies: retries on gRPC statuses only (connect-failure dropped),
    # none when no status is asked for; ring hash; max requests; no Envoy-only cluster policy.
    routes = {name: config["virtual_hosts"][0]["routes"][0]["route"] for name, config in golden("roles_policies", "grpc-client", TypeUrl.ROUTE).items()}
    assert routes["retrying"]["retry_policy"]["retry_on"] == "unavailable"
    assert routes["retrying"]["retry_policy"]["num_retries"] == 3
    assert "retry_policy" not in routes["ring"] and routes["ring"]["hash_policy"] == [{"header": {"header_name": "x-session"}}]
    clusters = golden("roles_policies", "grpc-client", TypeUrl.CLUSTER)
    assert clusters["ring"]["lb_policy"] == "RING_HASH" and "lb_policy" not in clusters["least"]
    assert clusters["limited"]["circuit_breakers"] == {"thresholds": [{"max_requests": 20}]}
    assert not any({"health_checks", "transport_socket"} & set(c) for c in clusters.values())
    # Outlier detection only by failure percentage (gRPC ignores the consecutive triggers), success rate off.
    assert [name for name, c in clusters.items() if "outlier_detection" in c] == ["shedding"]
    assert clusters["shedding"]["outlier_detection"] == {
        "interval": "2s", "base_ejection_time": "30s", "max_ejection_percent": 30, "enforcing_success_rate": 0,
        "failure_percentage_threshold": 50, "enforcing_failure_percentage": 100,
        "failure_percentage_minimum_hosts": 2, "failure_percentage_request_volume": 20,
    }
    sidecar_detection = golden("roles_policies", "sidecar", TypeUrl.CLUSTER)["shedding"]["outlier_detection"]
    assert (sidecar_detection["consecutive_5xx"], sidecar_detection["enforcing_consecutive_5xx"]) == (3, 100)
    assert (sidecar_detection["failure_percentage_threshold"], sidecar_detection["enforcing_failure_percentage"]) == (50, 100)
    # gRPC ignores localities without weight: each zone is weighed by its endpoints.
    least = golden("roles_policies", "grpc-client", TypeUrl.ENDPOINT)["least"]["endpoints"]
    assert [(z["locality"]["zone"], z["load_balancing_weight"]) for z in least] == [("eu-west-1a", 1), ("eu-west-1b", 2)]


def test_wildcard_hosts_match_with_a_port() -> None:
    td = task_definition("shop", 1, {"xds.service": "shop", "xds.route.hosts": "*.example.com"})
    resources = translate(build_mesh([cluster_state([task(td, "s1", "127.0.0.1")], [td])]), EdgeRole("127.0.0.1", 10000))
    (config,) = resources.of(TypeUrl.ROUTE).values()
    domains = [d for vh in config.virtual_hosts for d in vh.domains]  # type: ignore[attr-defined]
    assert domains == ["*.example.com"], domains
    # Any port is stripped from Host/:authority before matching, so a.example.com:8080 matches too.
    (listener,) = resources.of(TypeUrl.LISTENER).values()
    manager = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)  # type: ignore[attr-defined]
    assert manager.strip_any_host_port
    assert json.loads(json_format.MessageToJson(manager))["stripAnyHostPort"] is True


def test_the_tcp_golden_files_show_what_users_rely_on() -> None:
    """TCP services: a tcp_proxy listener at the service's port, at the edge only when routed."""
    edge = golden("tcp_services", "edge", TypeUrl.LISTENER)
    assert sorted(edge) == ["edge", "tcp/cache"]  # ledger has route.enabled=false
    cache = edge["tcp/cache"]
    assert cache["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 16379}
    (chain,) = cache["filter_chains"]
    assert [(f["name"], f["typed_config"]["cluster"]) for f in chain["filters"]] == [("envoy.filters.network.tcp_proxy", "cache")]
    assert "typed_extension_protocol_options" not in golden("tcp_services", "edge", TypeUrl.CLUSTER)["cache"]
    sidecar = golden("tcp_services", "sidecar", TypeUrl.LISTENER)
    assert sorted(sidecar) == ["outbound", "tcp/cache", "tcp/ledger"]
    # ledger's weights: each connection picks ledger or ledger-next, whose cluster the sidecar gets too.
    weighted = sidecar["tcp/ledger"]["filter_chains"][0]["filters"][0]["typed_config"]["weighted_clusters"]["clusters"]
    assert weighted == [{"name": "ledger", "weight": 80}, {"name": "ledger-next", "weight": 20}]
    assert sorted(golden("tcp_services", "sidecar", TypeUrl.CLUSTER)) == ["cache", "ledger", "ledger-next", "web"]
    assert [vh["domains"] for vh in golden("tcp_services", "sidecar", TypeUrl.ROUTE)["outbound"]["virtual_hosts"]] == [["web"], ["*"]]
    assert sorted(golden("tcp_services", "grpc-client", TypeUrl.CLUSTER)) == ["web"]


def test_the_tcp_sni_golden_files_show_what_users_rely_on() -> None:
    """A port shared by SNI: one listener `tcp/port/<port>` with the TLS inspector and a chain per
    service (the catch-all without a match); a port one service holds without hosts keeps `tcp/<service>`."""
    edge = golden("tcp_sni", "edge", TypeUrl.LISTENER)
    assert sorted(edge) == ["edge", "tcp/cache", "tcp/port/15443"]
    shared = edge["tcp/port/15443"]
    assert shared["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15443}
    assert [f["name"] for f in shared["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    chains = [
        (c["name"], c.get("filter_chain_match", {}).get("server_names"), c["filters"][0]["typed_config"].get("cluster"))
        for c in shared["filter_chains"]
    ]
    assert chains == [
        ("db-a", ["a.db.example.com"], "db-a"),
        ("shops", ["*.shop.example.com", "shop.example.com"], None),  # weighted: shops and shops-next
        ("legacy", None, "legacy"),
    ]
    log = shared["filter_chains"][0]["filters"][0]["typed_config"]["access_log"][0]
    assert log["typed_config"]["log_format"]["json_format"]["sni"] == "%REQUESTED_SERVER_NAME%"
    sidecar = golden("tcp_sni", "sidecar", TypeUrl.LISTENER)
    assert sorted(sidecar) == ["outbound", "tcp/port/15443"]  # caller calls db-a and shops, not legacy nor cache
    assert [c["filter_chain_match"]["server_names"] for c in sidecar["tcp/port/15443"]["filter_chains"]] == [
        ["a.db.example.com"], ["*.shop.example.com", "shop.example.com"],
    ]
