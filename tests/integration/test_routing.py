"""Routing features of issue 17 with real parts: local ECS tasks (route guide processes), the control
plane started with a default host rule, a real Envoy, real gRPC, gRPC-Web and CORS calls.

What a user sees: the right service answers on its default host; header matches pick the service;
the rewritten path and the edited headers arrive at the task; a gRPC-Web call (HTTP/1.1 POST, and
from Chromium) gets its reply and a CORS preflight its headers; one cookie keeps landing on one task;
the mirror receives its share; injected faults appear at their rate, only for calls with the header.
Loops are bounded in count; rates are asserted with generous tolerances.
"""

from __future__ import annotations

import http.client
import json
import shutil
import struct
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import grpc
import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.stack import DemoStack
from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.server import RECEIVED_METADATA

from .loopback_http import serving

pytestmark = pytest.mark.integration

DOMAIN = "routing.test"
ORIGIN = f"https://app.{DOMAIN}"
MIRROR_PERCENT = 50
ABORT_PERCENT = 30
DELAY_PERCENT = 50
DELAY_S = 0.4
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# ECS service -> register() arguments (family = ECS service name).
SERVICES: dict[str, dict[str, Any]] = {
    # No xds.route.hosts: the default host rule gives alpha.routing.test and beta.routing.test.
    "alpha": dict(service="alpha", labels={"xds.lb.policy": "ring_hash", "xds.lb.hash-cookie": "alpha-affinity", "xds.lb.hash-cookie-ttl": "1h"}),
    "beta": dict(service="beta"),
    # On beta's host too, for the calls whose x-tenant starts with acme- (a header match).
    "acme": dict(service="acme", labels={"xds.route.hosts": f"beta.{DOMAIN}", "xds.route.header.x-tenant": "prefix:acme-"}),
    "rewritten": dict(service="rewritten", labels={
        "xds.route.hosts": f"rewrite.{DOMAIN}", "xds.route.prefix": "/v2/", "xds.route.rewrite.prefix": "/routeguide.RouteGuide/",
        "xds.route.rewrite.host": "guide.internal", "xds.route.header.x-version": r"regex:v[0-9]+",
        "xds.route.request-headers.add.x-added": "by-the-edge", "xds.route.request-headers.remove": "x-secret",
        "xds.route.response-headers.add.x-edge": "rewritten",
    }),
    # Origins: ORIGIN, and the page Chromium loads (its port is added when the stack starts).
    "web": dict(service="web", labels={"xds.grpc-web": "true", "xds.cors.allow-origins": ORIGIN, "xds.cors.max-age": "10m"}),
    "primary": dict(service="primary", labels={
        "xds.route.hosts": f"primary.{DOMAIN}", "xds.mirror.service": "shadow", "xds.mirror.percent": str(MIRROR_PERCENT),
        "xds.fault.abort": "UNAVAILABLE", "xds.fault.abort-percent": str(ABORT_PERCENT),
        "xds.fault.delay": f"{int(DELAY_S * 1000)}ms", "xds.fault.delay-percent": str(DELAY_PERCENT), "xds.fault.headers": "x-chaos",
    }),
    "shadow": dict(service="shadow", labels={"xds.route.enabled": "false"}),
}
COUNTS = {"alpha": 2}


@pytest.fixture(scope="module")
def stack(page_server: int) -> Iterator[DemoStack]:
    with DemoStack(cluster="routing", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        for name, arguments in SERVICES.items():
            if name == "web":
                origins = f"{ORIGIN},http://page.{DOMAIN}:{page_server}"
                arguments = {**arguments, "labels": {**arguments["labels"], "xds.cors.allow-origins": origins}}
            stack.create_service(name, stack.register(family=name, **arguments), COUNTS.get(name, 1))
        for name in SERVICES:
            stack.wait_for_running(name, COUNTS.get(name, 1), timeout=60)
        stack.start_control_plane("--default-host-rule", "{service}." + DOMAIN)
        yield stack


@pytest.fixture(scope="module")
def envoy(stack: DemoStack) -> EnvoyProcess:
    envoy = stack.start_envoy("edge-routing")
    for name in SERVICES:
        envoy.wait_for_hosts(name, addresses(stack, name), timeout=30)
    return envoy


def addresses(stack: DemoStack, ecs_service: str) -> set[str]:
    return stack.addresses(stack.running_tasks(ecs_service))


def channel(envoy: EnvoyProcess, host: str) -> grpc.Channel:
    options = [("grpc.default_authority", host), ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
    return grpc.insecure_channel(envoy.target, options=options)


def calls(envoy: EnvoyProcess, host: str, n: int, metadata: tuple[tuple[str, str], ...] = ()) -> tuple[Counter[str], Counter[grpc.StatusCode]]:
    answered: Counter[str] = Counter()
    failed: Counter[grpc.StatusCode] = Counter()
    with channel(envoy, host) as ch:
        stub = pb_grpc.RouteGuideStub(ch)
        for _ in range(n):
            try:
                answered[stub.GetFeature(pb.Point(latitude=1, longitude=2), metadata=metadata, timeout=5).served_by.address] += 1
            except grpc.RpcError as error:
                failed[error.code()] += 1
    return answered, failed


def counter(envoy: EnvoyProcess, name: str) -> int:
    for line in envoy.admin("/stats?filter=" + name).splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


# -- default host rule and matches ----------------------------------------------------------------


def test_each_service_without_hosts_answers_on_its_own_default_host(stack: DemoStack, envoy: EnvoyProcess) -> None:
    alpha, (beta,) = addresses(stack, "alpha"), addresses(stack, "beta")

    on_alpha, failed_alpha = calls(envoy, f"alpha.{DOMAIN}", 20)
    on_beta, failed_beta = calls(envoy, f"beta.{DOMAIN}", 20)
    _, elsewhere = calls(envoy, f"gamma.{DOMAIN}", 3)

    assert set(on_alpha) <= alpha and sum(on_alpha.values()) == 20 and not failed_alpha, (on_alpha, failed_alpha)
    assert on_beta == Counter({beta: 20}) and not failed_beta, (on_beta, failed_beta)
    # No service is on '*' any more: a host nobody has gets no route (UNIMPLEMENTED, Envoy's 404).
    assert elsewhere == Counter({grpc.StatusCode.UNIMPLEMENTED: 3})


def test_a_header_match_picks_the_service_on_a_shared_host(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (acme,), (beta,) = addresses(stack, "acme"), addresses(stack, "beta")
    tenant, _ = calls(envoy, f"beta.{DOMAIN}", 10, (("x-tenant", "acme-7"),))
    other, _ = calls(envoy, f"beta.{DOMAIN}", 10, (("x-tenant", "globex"),))
    assert tenant == Counter({acme: 10}) and other == Counter({beta: 10}), (tenant, other)


# -- rewrites and header edits ---------------------------------------------------------------------


def test_the_rewritten_path_and_the_edited_headers_arrive(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (rewritten,) = addresses(stack, "rewritten")
    with channel(envoy, f"rewrite.{DOMAIN}") as ch:
        # The task serves /routeguide.RouteGuide/GetFeature only: the call succeeds only if Envoy rewrote /v2/.
        get = ch.unary_unary("/v2/GetFeature", request_serializer=pb.Point.SerializeToString, response_deserializer=pb.Feature.FromString)
        metadata = (("x-version", "v7"), ("x-secret", "s3cr3t"), ("x-kept", "yes"))
        feature, call = get.with_call(pb.Point(latitude=3, longitude=4), metadata=metadata, timeout=5)
        unmatched = ch.unary_unary("/v2/GetFeature", request_serializer=pb.Point.SerializeToString, response_deserializer=pb.Feature.FromString)
        with pytest.raises(grpc.RpcError) as refused:
            unmatched(pb.Point(), metadata=(("x-version", "seven"),), timeout=5)  # the regex needs v<digits>

    assert feature.served_by.address == rewritten and feature.location.latitude == 3
    reply_headers = dict(call.initial_metadata())
    received = dict(json.loads(reply_headers[RECEIVED_METADATA]))
    assert received["x-added"] == "by-the-edge" and received["x-kept"] == "yes" and "x-secret" not in received, received
    assert reply_headers["x-edge"] == "rewritten"
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    # Envoy's access log (flushed every 250 ms: demo.envoy.ACCESS_LOG_FLUSH_MS) shows what it sent: the rewritten path and host.
    def sent() -> list[dict[str, Any]]:
        lines = envoy.process.stdout_path.read_text(errors="replace").splitlines()
        return [entry for entry in map(_json_or_none, lines) if entry and entry.get("upstream_service") == "rewritten"]

    deadline = time.monotonic() + 10
    while not sent() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [(e["path"], e["authority"]) for e in sent()] == [("/routeguide.RouteGuide/GetFeature", "guide.internal")], (
        sent(), envoy.process.stdout_path.read_text()[-2000:]
    )


def _json_or_none(line: str) -> dict[str, Any] | None:
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


# -- gRPC-Web and CORS ---------------------------------------------------------------------------


def grpc_web_frames(body: bytes) -> tuple[list[bytes], dict[str, str]]:
    """Messages and trailers of a gRPC-Web response body (5-byte frame headers, trailers flagged 0x80)."""
    messages, trailers, at = [], {}, 0
    while at + 5 <= len(body):
        flag, length = body[at], struct.unpack(">I", body[at + 1 : at + 5])[0]
        payload = body[at + 5 : at + 5 + length]
        at += 5 + length
        if flag & 0x80:
            for line in payload.decode().split("\r\n"):
                if ":" in line:
                    key, _, value = line.partition(":")
                    trailers[key.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, trailers


def grpc_web_call(envoy: EnvoyProcess, host: str, point: pb.Point) -> tuple[int, dict[str, str], bytes]:
    message = point.SerializeToString()
    connection = http.client.HTTPConnection(envoy.listen_address, envoy.listen_port, timeout=10)
    try:
        connection.request(
            "POST", "/routeguide.RouteGuide/GetFeature", body=b"\x00" + struct.pack(">I", len(message)) + message,
            headers={"Host": host, "Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Origin": ORIGIN},
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_a_grpc_web_call_over_http1_gets_its_reply(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (web,) = addresses(stack, "web")

    status, headers, body = grpc_web_call(envoy, f"web.{DOMAIN}", pb.Point(latitude=5, longitude=6))

    assert status == 200 and headers["content-type"].startswith("application/grpc-web"), (status, headers, body[:200])
    messages, trailers = grpc_web_frames(body)
    assert trailers.get("grpc-status", headers.get("grpc-status")) == "0", (trailers, headers)
    (feature,) = [pb.Feature.FromString(m) for m in messages]
    assert feature.served_by.address == web and feature.location.longitude == 6
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in headers["access-control-expose-headers"]


def test_grpc_web_stays_off_for_services_that_did_not_ask(envoy: EnvoyProcess) -> None:
    status, headers, body = grpc_web_call(envoy, f"beta.{DOMAIN}", pb.Point(latitude=5, longitude=6))
    # Without the filter the gRPC server gets a content type it does not speak and resets the stream.
    assert status == 503 and not headers.get("content-type", "").startswith("application/grpc-web"), (status, headers, body[:200])
    assert b"reset" in body


def preflight(envoy: EnvoyProcess, origin: str) -> tuple[int, dict[str, str]]:
    connection = http.client.HTTPConnection(envoy.listen_address, envoy.listen_port, timeout=10)
    try:
        connection.request("OPTIONS", "/routeguide.RouteGuide/GetFeature", headers={
            "Host": f"web.{DOMAIN}", "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent",
        })
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def test_a_cors_preflight_gets_the_right_headers_and_another_origin_none(envoy: EnvoyProcess) -> None:
    status, headers = preflight(envoy, ORIGIN)
    assert status == 200, (status, headers)
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in headers["access-control-allow-methods"].split(",")
    assert {"content-type", "x-grpc-web", "x-user-agent"} <= set(headers["access-control-allow-headers"].split(","))
    assert headers["access-control-max-age"] == "600"

    _, elsewhere = preflight(envoy, "https://evil.example")
    assert "access-control-allow-origin" not in elsewhere, elsewhere


@pytest.fixture(scope="module")
def page_server() -> Iterator[int]:
    """A page on loopback (Chromium reaches it as http://page.routing.test) whose script makes a
    gRPC-Web call through the edge with fetch, as a browser client library does."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>grpc-web</title><p>ready</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Page) as port:
        yield port


BROWSER_CALL = """async ([url, message]) => {
  const framed = new Uint8Array(5 + message.length);
  new DataView(framed.buffer).setUint32(1, message.length);
  framed.set(message, 5);
  const response = await fetch(url, {method: 'POST', body: framed,
    headers: {'Content-Type': 'application/grpc-web+proto', 'X-Grpc-Web': '1', 'X-User-Agent': 'grpc-web-javascript/0.1'}});
  const body = new Uint8Array(await response.arrayBuffer());
  return {status: response.status, body: Array.from(body)};
}"""


def test_chromium_calls_the_service_with_grpc_web_across_origins(stack: DemoStack, envoy: EnvoyProcess, page_server: int) -> None:
    from playwright.sync_api import sync_playwright

    (web,) = addresses(stack, "web")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1"],
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"http://page.{DOMAIN}:{page_server}/")
            url = f"http://web.{DOMAIN}:{envoy.listen_port}/routeguide.RouteGuide/GetFeature"
            # The Content-Type and X-Grpc-Web headers make this a non-simple request: Chromium sends a preflight first.
            result = page.evaluate(BROWSER_CALL, [url, list(pb.Point(latitude=7, longitude=8).SerializeToString())])
        finally:
            browser.close()

    assert result["status"] == 200, result
    messages, trailers = grpc_web_frames(bytes(result["body"]))
    assert trailers.get("grpc-status") == "0", trailers
    (feature,) = [pb.Feature.FromString(m) for m in messages]
    assert feature.served_by.address == web and feature.location.latitude == 7


# -- stickiness by cookie ----------------------------------------------------------------------------


def test_the_same_cookie_lands_on_the_same_task(stack: DemoStack, envoy: EnvoyProcess) -> None:
    alpha = addresses(stack, "alpha")
    with channel(envoy, f"alpha.{DOMAIN}") as ch:
        stub = pb_grpc.RouteGuideStub(ch)
        first, call = stub.GetFeature.with_call(pb.Point(), timeout=5)
        set_cookie = dict(call.initial_metadata()).get("set-cookie", "")
        assert set_cookie.startswith("alpha-affinity=") and "Max-Age=3600" in set_cookie, set_cookie
        cookie = set_cookie.split(";", 1)[0]
        sticky = Counter(stub.GetFeature(pb.Point(), metadata=(("cookie", cookie),), timeout=5).served_by.address for _ in range(20))
        spread = Counter(
            stub.GetFeature(pb.Point(), metadata=(("cookie", f"alpha-affinity=visitor-{n}"),), timeout=5).served_by.address for n in range(30)
        )

    assert len(sticky) == 1 and set(sticky) <= alpha, sticky
    assert first.served_by.address in sticky  # the call that got the cookie went where the cookie leads
    assert set(spread) == alpha, spread  # other cookies reach the other task too (2^-29 to fail by chance)


# -- mirroring and faults -------------------------------------------------------------------------------


def test_the_mirror_receives_its_share_and_the_caller_only_the_primary(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (primary,) = addresses(stack, "primary")
    before = counter(envoy, "cluster.shadow.upstream_rq_completed")

    answered, failed = calls(envoy, f"primary.{DOMAIN}", 80)

    assert answered == Counter({primary: 80}) and not failed, (answered, failed)
    deadline = time.monotonic() + 10
    mirrored = counter(envoy, "cluster.shadow.upstream_rq_completed") - before
    while mirrored < 20 and time.monotonic() < deadline:  # shadow calls complete in the background
        time.sleep(0.2)
        mirrored = counter(envoy, "cluster.shadow.upstream_rq_completed") - before
    # 50% of 80: 40 expected; 20-60 is more than 4 standard deviations either way.
    assert 20 <= mirrored <= 60, mirrored
    assert counter(envoy, "cluster.shadow.upstream_rq_200") >= mirrored  # the shadow task answered them


def test_faults_appear_at_their_rate_only_for_calls_with_the_header(stack: DemoStack, envoy: EnvoyProcess) -> None:
    (primary,) = addresses(stack, "primary")
    aborts_before = counter(envoy, "http.edge.fault.aborts_injected")
    delays_before = counter(envoy, "http.edge.fault.delays_injected")

    calm, calm_failed = calls(envoy, f"primary.{DOMAIN}", 20)
    assert calm == Counter({primary: 20}) and not calm_failed
    assert counter(envoy, "http.edge.fault.aborts_injected") == aborts_before

    n, slow, statuses = 60, 0, Counter[grpc.StatusCode]()
    with channel(envoy, f"primary.{DOMAIN}") as ch:
        stub = pb_grpc.RouteGuideStub(ch)
        for _ in range(n):
            started = time.monotonic()
            try:
                stub.GetFeature(pb.Point(), metadata=(("x-chaos", "1"),), timeout=10)
                statuses[grpc.StatusCode.OK] += 1
            except grpc.RpcError as error:
                statuses[error.code()] += 1
            slow += time.monotonic() - started >= 0.9 * DELAY_S  # Envoy's timer may fire a hair early

    aborted = statuses[grpc.StatusCode.UNAVAILABLE]
    assert set(statuses) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, statuses
    # 30% of 60 (18) aborted and 50% of 60 (30) delayed expected; outside these ranges about 2 runs in a million by chance.
    delayed = counter(envoy, "http.edge.fault.delays_injected") - delays_before
    assert 4 <= aborted <= 36, statuses
    assert counter(envoy, "http.edge.fault.aborts_injected") - aborts_before == aborted
    assert 12 <= delayed <= 48, delayed
    # Every delayed call took the delay (a busy machine may slow others too: a lower bound only).
    assert slow >= delayed, (slow, delayed)
