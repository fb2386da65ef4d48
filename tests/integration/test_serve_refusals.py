"""`controlplane serve` refuses unsafe or impossible setups with one line and a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from controlplane.demo.processes import ChildProcess, free_port

pytestmark = pytest.mark.integration


def environment() -> dict[str, str]:
    """AWS pointed at a closed loopback port: serve starts, and its reads of ECS fail (fail static)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    closed = f"http://127.0.0.1:{free_port()}"
    env.update(
        AWS_ENDPOINT_URL_ECS=closed, AWS_ENDPOINT_URL_EC2=closed, AWS_ENDPOINT_URL_SQS=closed, AWS_ENDPOINT_URL_SSM=closed,
        AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # Every port of ours is 0 (any free one) unless the test says otherwise: nothing collides with a real serve.
        [sys.executable, "-m", "controlplane", "serve", "--log-format", "json", "--dashboard-port", "0", "--edge-plaintext", *args],
        capture_output=True, text=True, timeout=60, env=environment(),
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_xds_off_loopback_without_tls_is_refused_naming_xds_insecure() -> None:
    line = one_line_error(serve("--xds-address", "0.0.0.0", "--xds-port", "0", "--admin-port", "0", "--metrics-port", "0"))
    assert line.startswith("controlplane serve: xDS address 0.0.0.0 is not loopback")
    assert "--xds-insecure" in line and "plaintext" in line and "proxies not authenticated" in line


def test_metrics_off_loopback_are_refused_naming_metrics_insecure() -> None:
    line = one_line_error(serve("--xds-port", "0", "--admin-port", "0", "--metrics-address", "0.0.0.0", "--metrics-port", "0"))
    assert line.startswith("controlplane serve: metrics address 0.0.0.0 is not loopback") and "--metrics-insecure" in line


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChildProcess, dict[str, int], Path]]:
    work = tmp_path_factory.mktemp("serve")
    ports = {"xds": free_port(), "admin": free_port(), "metrics": free_port()}
    token = work / "admin-token"
    token.write_text("token-in-argv-0123\n")
    process = ChildProcess(
        "controlplane",
        [
            sys.executable, "-m", "controlplane", "serve", "--log-format", "json", "--poll-interval", "5",
            "--xds-port", str(ports["xds"]), "--admin-port", str(ports["admin"]), "--metrics-port", str(ports["metrics"]),
            "--dashboard-port", "0", "--edge-plaintext", "--admin-token", "token-in-argv-0123",
        ],
        work,
        env=environment(),
    ).start()
    try:
        process.wait_until(lambda: "controlplane.listening" in process.stderr_path.read_text(), 30, "listening")
        yield process, ports, token
    finally:
        process.stop()


def test_an_admin_token_on_the_command_line_is_warned_about(running: tuple[ChildProcess, dict[str, int], Path]) -> None:
    process, _, _ = running
    log = process.stderr_path.read_text()
    assert '"event": "settings.secret_in_argv"' in log and '"flag": "--admin-token"' in log
    assert "token-in-argv-0123" not in log


# gRPC turns SO_REUSEPORT on by default, which would let a second serve share the xDS and admin ports.
@pytest.mark.parametrize("server", ["xds", "admin"])
def test_a_second_serve_on_a_taken_port_fails_at_once_with_one_line(running: tuple[ChildProcess, dict[str, int], Path], server: str) -> None:
    _, ports, _ = running
    mine = {"xds": free_port(), "admin": free_port()}
    mine[server] = ports[server]
    line = one_line_error(serve("--xds-port", str(mine["xds"]), "--admin-port", str(mine["admin"]), "--metrics-port", "0"))
    what = {"xds": "xDS", "admin": "admin API"}[server]
    assert line == (
        f"controlplane serve: {what} cannot listen on 127.0.0.1:{ports[server]}: the port is in use (another controlplane serve on this host?)"
    )


def test_status_reads_the_admin_token_from_a_file(running: tuple[ChildProcess, dict[str, int], Path]) -> None:
    _, ports, token = running
    admin = ["--admin", f"127.0.0.1:{ports['admin']}"]
    status = [sys.executable, "-m", "controlplane", "status", *admin]
    refused = subprocess.run(status, capture_output=True, text=True, timeout=30, env=environment())
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    allowed = subprocess.run([*status, "--token-file", str(token)], capture_output=True, text=True, timeout=30, env=environment())
    # Authenticated; ECS cannot be read: not ready (exit 3), and the cluster's read errors are shown.
    assert allowed.returncode == 3, allowed.stderr
    assert "ready=false" in allowed.stdout and "never read" in allowed.stdout
