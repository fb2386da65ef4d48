"""The `controlplane` command as a user meets it: every subcommand has help, mistakes get one line and a
non-zero exit (never a traceback), and `serve`'s flags are generated from the one settings model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Sequence

import pytest

from controlplane import __version__
from controlplane.settings import Settings

SUBCOMMANDS = ["serve", "bootstrap", "status", "services", "proxies", "config", "render", "demo", "local-ecs"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controlplane", *args], capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_help_lists_every_subcommand_and_the_version() -> None:
    done = cli("--help")
    assert done.returncode == 0
    for name in SUBCOMMANDS:
        assert name in done.stdout
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"controlplane {__version__}"


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    done = cli(name, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "Traceback" not in done.stderr


def test_serve_flags_are_generated_from_the_settings_model() -> None:
    """One declaration: every setting is a flag whose help shows its environment variable and default."""
    help_text = " ".join(cli("serve", "--help").stdout.split())
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in help_text, f"setting {name} has no flag {flag}"
        assert f"CONTROLPLANE_{name.upper()}" in help_text, f"help of {flag} does not name its environment variable"
        assert field.description, f"setting {name} has no description, so its flag has no help"


def test_a_bad_setting_names_the_flag_and_variable_not_the_field() -> None:
    line = one_line_error(done := cli("serve", "--xds-port", "99999"))
    assert done.returncode == 2
    assert "--xds-port" in line and "CONTROLPLANE_XDS_PORT" in line and "65535" in line


def clean_aws_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CONTROLPLANE_"))}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return env


# Should anything get as far as calling AWS, it reaches a closed loopback port, never the internet.
NO_AWS = {f"AWS_ENDPOINT_URL_{service}": "http://127.0.0.1:9" for service in ("ECS", "EC2", "SQS", "SSM", "SECRETS_MANAGER")}


def test_no_region_is_one_line() -> None:
    done = cli("serve", "--cluster", "x", "--edge-plaintext", "--xds-address", "127.0.0.1", "--xds-port", "0", "--admin-port", "0",
               "--metrics-port", "0", "--dashboard-port", "0", env=dict(clean_aws_env(), **NO_AWS))
    assert done.returncode == 2
    assert "region" in one_line_error(done)


@pytest.mark.parametrize("flag", ["--xds-port", "--admin-port", "--metrics-port", "--dashboard-port"])
def test_a_busy_port_is_one_line(flag: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        ports = {"--xds-port": "0", "--admin-port": "0", "--metrics-port": "0", "--dashboard-port": "0", flag: port}
        env = dict(clean_aws_env(), AWS_DEFAULT_REGION="eu-west-1", **NO_AWS)
        args: list[str] = ["serve", "--cluster", "x", "--xds-address", "127.0.0.1", "--edge-plaintext"]
        for name, value in ports.items():
            args += [name, value]
        done = cli(*args, env=env)
    assert done.returncode == 2
    line = one_line_error(done)
    assert "cannot listen" in line


def test_admin_api_unreachable_is_one_line() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    done = cli("status", "--admin", f"127.0.0.1:{port}", "--timeout", "2")
    assert done.returncode == 1
    assert "UNAVAILABLE" in one_line_error(done)


def test_tls_flags_without_a_ca_are_one_line() -> None:
    done = cli("status", "--tls-cert", "client.crt", "--tls-key", "client.key")
    assert done.returncode == 2
    assert "--tls-ca" in one_line_error(done)


def run_into_closed_pipe(args: Sequence[str]) -> tuple[int, str]:
    process = subprocess.Popen([sys.executable, "-m", "controlplane", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader leaves before the command writes, like `| head` does
    stderr = process.stderr.read().decode()
    return process.wait(timeout=60), stderr


def test_a_closed_pipe_ends_quietly() -> None:
    code, stderr = run_into_closed_pipe(["bootstrap", "--node-id", "edge-1", "--xds", "127.0.0.1:18000", "--listen-port", "10000"])
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code == 0
