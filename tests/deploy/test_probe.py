"""The images' health check (deploy/docker/probe.py) against a real gRPC health service and HTTP server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from controlplane.demo.processes import free_port

PROBE = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "probe.py"


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(0)


def test_grpc_health_serving_is_healthy_and_not_serving_is_not(health_server: tuple[str, health.HealthServicer]) -> None:
    target, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    not_serving = probe("grpc", target)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    serving = probe("grpc", target)

    assert (not_serving.returncode, not_serving.stderr.strip()) == (1, f"unhealthy: {target}: NOT_SERVING")
    assert (serving.returncode, serving.stderr) == (0, "")


def test_grpc_health_of_a_port_nobody_listens_on_is_unhealthy() -> None:
    result = probe("grpc", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr


def test_http_probe_needs_a_200() -> None:
    status = {"code": 503}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(status["code"])
            self.end_headers()
            self.wfile.write(b"LIVE" if status["code"] == 200 else b"PRE_INITIALIZING")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ready"
    try:
        unready = probe("http", url)
        status["code"] = 200
        ready = probe("http", url)
    finally:
        server.shutdown()
        server.server_close()
    assert (unready.returncode, unready.stderr.strip()) == (1, f"unhealthy: {url}: HTTP 503")
    assert ready.returncode == 0


def test_a_malformed_probe_command_says_how_to_call_it() -> None:
    result = probe("tcp", "127.0.0.1:1")
    assert result.returncode == 2 and result.stderr.startswith("usage: probe.py grpc")
