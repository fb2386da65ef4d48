"""Bootstraps from the ECS task metadata endpoint v4: a stand-in of the endpoint on 127.0.0.1 serves
the /task documents of AWS's documentation; the CLI and the Envoy image's entrypoint turn them into
bootstraps that real Envoy accepts (`envoy --mode validate`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import botocore
import pytest

from controlplane.demo.envoy import envoy_binary
from controlplane.errors import EcsMetadataError
from controlplane.proxy.ecs_metadata import METADATA_URI_ENV, parse_task_metadata, read_task_metadata

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker" / "envoy-entrypoint.sh"
BIN = Path(sys.executable).parent
# A real CA bundle, as the Envoy image has in /etc/ssl/certs (Envoy validate reads the file).
CA_BUNDLE = Path(botocore.__file__).parent / "cacert.pem"
FARGATE_TASK_ID = "e9028f8d5d8e4f258373e7b93ce9a3c3"


def first_certificate(bundle: Path) -> str:
    """One CA certificate in PEM, as a private CA's would be stored in an ECS secret."""
    end = "-----END CERTIFICATE-----"
    text = bundle.read_text()
    return text[text.index("-----BEGIN CERTIFICATE-----") : text.index(end) + len(end)]


class MetadataEndpoint:
    """The task metadata endpoint v4, as ECS serves it to a container: GET <base>/task."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.requests: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                endpoint.requests.append(self.path)
                body = endpoint.documents.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body or b'{"error": "not found"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/v4/{FARGATE_TASK_ID}-2495160603"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def serve(self, document: bytes) -> None:
        self.documents["/" + self.base.split("/", 3)[3] + "/task"] = document


@pytest.fixture
def metadata() -> Iterator[MetadataEndpoint]:
    endpoint = MetadataEndpoint()
    endpoint.thread.start()
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()


def environment(metadata: MetadataEndpoint, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("XDS_", "ENVOY_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", METADATA_URI_ENV: metadata.base})
    env.update(extra)
    return env


def validate(path: Path) -> None:
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{path}' OK" in result.stdout + result.stderr


def test_the_documented_task_responses_parse() -> None:
    fargate = parse_task_metadata(json.loads((DATA / "task-metadata-fargate.json").read_text()))
    ec2 = parse_task_metadata(json.loads((DATA / "task-metadata-ec2.json").read_text()))

    assert (fargate.cluster, fargate.node_id, fargate.availability_zone) == ("default", f"default/{FARGATE_TASK_ID}", "us-west-2a")
    assert (fargate.label("xds.service"), fargate.label("xds.port")) == ("features", "50051")
    assert (ec2.cluster, ec2.node_id, ec2.availability_zone) == ("default", "default/158d1c8083dd49d6b527399fd6414f5c", "us-west-2d")
    # ECS's pause container is not the app; the EC2 example's app has no xds labels.
    assert [c.type for c in ec2.containers] == ["CNI_PAUSE", "NORMAL"]
    assert ec2.label("com.amazonaws.ecs.container-name") == "curl"
    assert ec2.label("xds.service") is None


@pytest.mark.parametrize(
    "document,message",
    [
        ([], "expected a JSON object"),
        ({"Cluster": "default"}, "field TaskARN is missing"),
        ({"TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/1"}, "field Cluster is missing"),
    ],
)
def test_a_document_that_is_not_a_task_is_refused_with_the_field_it_lacks(document: object, message: str) -> None:
    with pytest.raises(EcsMetadataError, match=message):
        parse_task_metadata(document)


def test_reading_outside_ecs_says_so() -> None:
    with pytest.raises(EcsMetadataError, match=f"{METADATA_URI_ENV} is not set"):
        read_task_metadata({})


def test_an_endpoint_that_keeps_failing_is_reported_with_its_url(metadata: MetadataEndpoint) -> None:
    with pytest.raises(EcsMetadataError, match=r"/task: HTTP 404 after 2 attempts"):
        read_task_metadata({METADATA_URI_ENV: metadata.base}, attempts=2, backoff=0)
    assert len(metadata.requests) == 2


def test_sidecar_bootstrap_from_the_fargate_metadata_passes_envoy_validation(metadata: MetadataEndpoint, tmp_path: Path) -> None:
    metadata.serve((DATA / "task-metadata-fargate.json").read_bytes())
    command = [
        str(BIN / "controlplane"), "bootstrap", "--from-ecs-metadata", "--role", "sidecar",
        "--xds", "127.0.0.1:18000", "--xds-tls-ca", str(CA_BUNDLE), "--xds-tls-sni", "xds.example.com",
        "--inbound-port", "15000",
    ]  # fmt: skip
    result = subprocess.run(command, env=environment(metadata), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr

    config = json.loads(result.stdout)
    node = config["node"]
    assert node["id"] == f"default/{FARGATE_TASK_ID}"
    assert node["locality"] == {"zone": "us-west-2a"}
    # Service and app port come from the app container's own labels.
    assert node["metadata"]["service"] == "features" and node["metadata"]["app_port"] == 50051
    tls = config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    assert tls["sni"] == "xds.example.com"
    assert tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "xds.example.com"}}
    ]
    path = tmp_path / "sidecar.json"
    path.write_text(result.stdout)
    validate(path)


def test_the_envoy_image_entrypoint_writes_the_bootstrap_then_execs_envoy(metadata: MetadataEndpoint, tmp_path: Path) -> None:
    metadata.serve((DATA / "task-metadata-fargate.json").read_bytes())
    bootstrap = tmp_path / "envoy" / "bootstrap.json"
    env = environment(
        metadata,
        XDS_ADDRESS="127.0.0.1:18000,127.0.0.2:18000",
        ENVOY_ROLE="edge",
        ENVOY_LISTEN_PORT="10443",
        ENVOY_BOOTSTRAP=str(bootstrap),
        XDS_TLS_CA_PEM=first_certificate(CA_BUNDLE),  # as an ECS secret injects it: text, not a file
        XDS_TLS_SNI="xds.example.com",
    )
    # The container's arguments go to Envoy: here, validate instead of run.
    result = subprocess.run(["sh", str(ENTRYPOINT), "--mode", "validate"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{bootstrap}' OK" in result.stdout + result.stderr
    config = json.loads(bootstrap.read_text())
    assert config["node"]["id"] == f"default/{FARGATE_TASK_ID}"
    assert config["node"]["metadata"] == {"role": "edge", "listen_address": "0.0.0.0", "listen_port": 10443}
    endpoints = config["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"]["address"] for e in endpoints] == ["127.0.0.1", "127.0.0.2"]
    ca_file = config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
    assert Path(ca_file["trusted_ca"]["filename"]).read_text().strip() == first_certificate(CA_BUNDLE)
    assert oct(Path(ca_file["trusted_ca"]["filename"]).stat().st_mode & 0o777) == "0o600"


def test_the_entrypoint_turns_zone_aware_balancing_on_for_a_sidecar(metadata: MetadataEndpoint, tmp_path: Path) -> None:
    metadata.serve((DATA / "task-metadata-fargate.json").read_bytes())
    bootstrap = tmp_path / "envoy" / "bootstrap.json"
    env = environment(
        metadata, XDS_ADDRESS="127.0.0.1:18000", ENVOY_ROLE="sidecar", ENVOY_SERVICE="orders",
        ENVOY_ZONE_AWARE="true", ENVOY_BOOTSTRAP=str(bootstrap),
    )
    result = subprocess.run(["sh", str(ENTRYPOINT), "--mode", "validate"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads(bootstrap.read_text())
    assert config["node"]["locality"] == {"zone": "us-west-2a"}
    assert config["node"]["metadata"]["local_service"] == "orders"
    assert config["cluster_manager"]["local_cluster_name"]


def test_the_entrypoint_stops_with_one_line_when_the_metadata_is_not_a_task(metadata: MetadataEndpoint, tmp_path: Path) -> None:
    metadata.serve(b'{"Cluster": "default"}')
    env = environment(metadata, XDS_ADDRESS="127.0.0.1:18000", ENVOY_BOOTSTRAP=str(tmp_path / "b.json"))

    result = subprocess.run(["sh", str(ENTRYPOINT), "--mode", "validate"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert result.stderr.strip() == "controlplane: task metadata: field TaskARN is missing (is this the /task document of metadata endpoint v4?)"


def test_the_entrypoint_needs_the_control_plane_address(metadata: MetadataEndpoint) -> None:
    result = subprocess.run(["sh", str(ENTRYPOINT)], env=environment(metadata), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "XDS_ADDRESS=HOST:PORT of the control plane is required" in result.stderr
