"""JWT at the edge with real parts: local ECS tasks (route guide processes), the control plane, a real
Envoy and real gRPC calls carrying tokens signed locally (docs/labels.md, "JWT at the edge").

What a user sees: a call without a token, with a token signed by another key, expired, or for another
audience is refused (UNAUTHENTICATED; the audience check is a 403, PERMISSION_DENIED) and never
reaches the task; a valid token reaches it with its claims as headers and without the token itself;
a service without JWT labels still answers without a token. The JWKS is fetched from a server on
127.0.0.1 through the cluster the control plane builds for it, or given inline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.server import RECEIVED_METADATA

from .jwt_tokens import SigningKey
from .loopback_http import serving

pytestmark = pytest.mark.integration

DOMAIN = "jwt.test"
ISSUER = "https://issuer.jwt.test"
REMOTE_KEY, INLINE_KEY, OTHER_KEY = SigningKey("remote"), SigningKey("inline"), SigningKey("other")
CLOSED_PORT = free_port()


class _Jwks(BaseHTTPRequestHandler):
    fetched = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).fetched += 1
        body = REMOTE_KEY.jwks().encode() if self.path == "/.well-known/jwks.json" else b"{}"
        self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def jwks_port() -> Iterator[int]:
    with serving(_Jwks) as port:
        yield port


def services(jwks_port: int) -> dict[str, dict[str, str]]:
    return {
        "remote": {
            "xds.route.hosts": f"remote.{DOMAIN}", "xds.jwt.issuer": ISSUER, "xds.jwt.audiences": "remote",
            "xds.jwt.jwks-uri": f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json",
            "xds.jwt.claim-header.sub": "x-user", "xds.jwt.claim-header.tenant": "x-tenant",
        },
        "inline": {"xds.route.hosts": f"inline.{DOMAIN}", "xds.jwt.issuer": ISSUER, "xds.jwt.jwks": INLINE_KEY.jwks(), "xds.jwt.forward": "true"},
        "open": {"xds.route.hosts": f"open.{DOMAIN}"},
        # Nothing listens there: the keys never arrive.
        "unreachable": {"xds.route.hosts": f"unreachable.{DOMAIN}", "xds.jwt.issuer": ISSUER, "xds.jwt.jwks-uri": f"http://127.0.0.1:{CLOSED_PORT}/jwks.json"},
    }


@pytest.fixture(scope="module")
def stack(jwks_port: int) -> Iterator[DemoStack]:
    with DemoStack(cluster="jwt", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        for name, labels in services(jwks_port).items():
            stack.create_service(name, stack.register(family=name, service=name, labels=labels), 1)
        for name in services(jwks_port):
            stack.wait_for_running(name, 1, timeout=60)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack, jwks_port: int) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-jwt")
    for name in services(jwks_port):
        envoy.wait_for_hosts(name, stack.addresses(stack.running_tasks(name)), timeout=30)
    return envoy


def call(envoy: EnvoyProcess, host: str, token: str | None = None) -> tuple[pb.Feature | None, dict[str, str], grpc.StatusCode]:
    """One GetFeature through the edge: the reply (None when refused), the metadata the task received, the status."""
    options = [("grpc.default_authority", host), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    with grpc.insecure_channel(envoy.target, options=options) as channel:
        try:
            feature, rpc = pb_grpc.RouteGuideStub(channel).GetFeature.with_call(pb.Point(latitude=1, longitude=2), metadata=metadata, timeout=5)
        except grpc.RpcError as error:
            return None, {}, error.code()
    received = dict(json.loads(dict(rpc.initial_metadata())[RECEIVED_METADATA]))
    return feature, received, grpc.StatusCode.OK


def counter(envoy: EnvoyProcess, name: str) -> int:
    for line in envoy.admin("/stats?filter=" + name).splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def test_calls_without_a_valid_token_are_refused_as_unauthenticated(envoy: EnvoyProcess) -> None:
    host = f"remote.{DOMAIN}"
    denied, sent = counter(envoy, "http.edge.jwt_authn.denied"), counter(envoy, "cluster.remote.upstream_rq_total")
    refused = {
        "no token": call(envoy, host)[2],
        "not a JWT": call(envoy, host, "not-a-token")[2],
        "signed by another key": call(envoy, host, OTHER_KEY.token(ISSUER, "remote", "mallory"))[2],
        "expired": call(envoy, host, REMOTE_KEY.token(ISSUER, "remote", "alice", ttl_s=-120))[2],
        "another issuer": call(envoy, host, REMOTE_KEY.token("https://elsewhere.test", "remote", "alice"))[2],
    }
    assert refused == {reason: grpc.StatusCode.UNAUTHENTICATED for reason in refused}, refused
    # Envoy answers 403 for a valid token for another audience: PERMISSION_DENIED.
    assert call(envoy, host, REMOTE_KEY.token(ISSUER, "billing", "alice"))[2] is grpc.StatusCode.PERMISSION_DENIED
    # The refusals are the jwt_authn filter's: no call reached the task.
    assert counter(envoy, "http.edge.jwt_authn.denied") - denied == 6
    assert counter(envoy, "cluster.remote.upstream_rq_total") == sent


def test_a_valid_token_reaches_the_task_with_its_claims_as_headers_and_without_the_token(envoy: EnvoyProcess) -> None:
    token = REMOTE_KEY.token(ISSUER, "remote", "alice", tenant="acme")

    feature, received, status = call(envoy, f"remote.{DOMAIN}", token)

    assert status is grpc.StatusCode.OK and feature is not None and feature.served_by.address
    assert received["x-user"] == "alice" and received["x-tenant"] == "acme", received
    assert "authorization" not in received, received  # xds.jwt.forward is false: Envoy removes the token


def test_an_inline_jwks_checks_tokens_and_forward_keeps_the_token(envoy: EnvoyProcess) -> None:
    host = f"inline.{DOMAIN}"
    token = INLINE_KEY.token(ISSUER, "any", "bob")

    _, received, status = call(envoy, host, token)

    assert status is grpc.StatusCode.OK and received["authorization"] == f"Bearer {token}", received
    assert call(envoy, host, REMOTE_KEY.token(ISSUER, "any", "bob"))[2] is grpc.StatusCode.UNAUTHENTICATED
    assert call(envoy, host)[2] is grpc.StatusCode.UNAUTHENTICATED


def test_a_jwks_that_cannot_be_fetched_refuses_every_call(envoy: EnvoyProcess) -> None:
    token = REMOTE_KEY.token(ISSUER, "any", "alice")
    assert call(envoy, f"unreachable.{DOMAIN}", token)[2] is grpc.StatusCode.UNAUTHENTICATED
    # The same token is good where the keys arrived: the refusal is the missing JWKS's.
    assert call(envoy, f"remote.{DOMAIN}", REMOTE_KEY.token(ISSUER, "remote", "alice"))[2] is grpc.StatusCode.OK


def test_a_service_without_jwt_labels_needs_no_token(envoy: EnvoyProcess) -> None:
    feature, _, status = call(envoy, f"open.{DOMAIN}")
    assert status is grpc.StatusCode.OK and feature is not None


def test_the_jwks_came_through_the_cluster_the_control_plane_built(envoy: EnvoyProcess, jwks_port: int) -> None:
    name = f"jwks:127.0.0.1:{jwks_port}"
    clusters = envoy.admin("/clusters")
    assert f"{name}::127.0.0.1:{jwks_port}::rq_success::" in clusters, clusters
    assert _Jwks.fetched >= 1
