"""TCP services sharing one port by TLS SNI (docs/labels.md "TCP services sharing a port by TLS SNI"),
with real parts: local ECS tasks running the TCP echo server in TLS mode, the control plane, a real
edge Envoy and a real sidecar. What a user sees: a TLS client naming a.test on the shared port
reaches service a's task, naming b.test b's, naming anything else the catch-all's; Envoy's
/config_dump shows the listener's chains and their server_names. Loopback only, bounded loops.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.demo.certificates import LocalCa
from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack, routeguide_task_definition

from .test_tcp import ECHO_PORT, echo_address

pytestmark = pytest.mark.integration

SIDECAR_ADDRESS = "127.0.0.2"  # the sidecar's outbound address: the edge listens on 127.0.0.1 at the same port
# service -> (its SNI names label, the name its certificate is for); `rest` is the port's catch-all.
SERVICES = {"a": ("a.test", "a.test"), "b": ("b.test,*.b.test", "b.test"), "rest": (None, "other.test")}


def tls_echo_task_definition(service: str, tcp_port: int, hosts: str | None, cert: str, key: str) -> dict[str, Any]:
    labels = {"xds.port": str(ECHO_PORT), "xds.protocol": "tcp", "xds.route.prefix": None, "xds.route.port": str(tcp_port), "xds.route.hosts": hosts}
    definition = routeguide_task_definition(service, service=service, labels=labels)  # type: ignore[arg-type]
    container = definition["containerDefinitions"][0]
    container["command"] = [
        sys.executable, "-m", "controlplane.routeguide.tcp_echo", "--port", str(ECHO_PORT), "--tls-cert", cert, "--tls-key", key,
    ]
    container["portMappings"] = [{"containerPort": ECHO_PORT, "protocol": "tcp"}]
    return definition


@pytest.fixture(scope="module")
def ca() -> LocalCa:
    return LocalCa()


@pytest.fixture(scope="module")
def tcp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stack(ca: LocalCa, tcp_port: int) -> Iterator[DemoStack]:
    with DemoStack(cluster="tcp-sni", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        for service, (hosts, name) in SERVICES.items():
            cert, key = ca.issue(name).write(stack.work_dir, service)
            registered = stack.ecs.register_task_definition(**tls_echo_task_definition(service, tcp_port, hosts, str(cert), str(key)))
            stack.create_service(service, registered["taskDefinition"]["taskDefinitionArn"], 1)
        stack.create_service("client", stack.register(family="client", service="client", labels={"xds.upstreams": "a,b"}), 1)
        for service in (*SERVICES, "client"):
            stack.wait_for_running(service, 1)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def proxies(stack: DemoStack) -> tuple[EnvoyProcess, EnvoyProcess]:
    edge = stack.start_envoy("edge-tcp-sni")
    sidecar = stack.start_sidecar("sidecar-client", "client", outbound_address=SIDECAR_ADDRESS)
    for service in SERVICES:
        edge.wait_for_hosts(service, {echo_address(t) for t in stack.running_tasks(service)}, timeout=30)
    for service in ("a", "b"):
        sidecar.wait_for_hosts(service, {echo_address(t) for t in stack.running_tasks(service)}, timeout=30)
    return edge, sidecar


def tls_echo(ca: LocalCa, host: str, port: int, server_name: str, text: str = "hello") -> dict[str, Any]:
    """One TLS connection naming `server_name`, one line: the reply (verified against the task's certificate)."""
    context = ssl.create_default_context(cadata=ca.pem)
    with socket.create_connection((host, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=server_name) as tls:
        tls.sendall(text.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = tls.recv(4096)
            assert chunk, f"the connection for {server_name} was closed without a reply"
            reply += chunk
    found: dict[str, Any] = json.loads(reply)
    assert found["echo"] == text and found["sni"] == server_name, found
    return found


def test_a_tls_client_reaches_the_task_of_the_service_its_sni_name_names(
    stack: DemoStack, proxies: tuple[EnvoyProcess, EnvoyProcess], ca: LocalCa, tcp_port: int
) -> None:
    edge, sidecar = proxies
    tasks = {service: echo_address(stack.running_tasks(service)[0]) for service in SERVICES}
    assert len(set(tasks.values())) == 3
    for _ in range(3):  # every connection, not one lucky pick
        assert tls_echo(ca, "127.0.0.1", tcp_port, "a.test")["address"] == tasks["a"]
        assert tls_echo(ca, "127.0.0.1", tcp_port, "b.test")["address"] == tasks["b"]
        assert tls_echo(ca, "127.0.0.1", tcp_port, "other.test")["address"] == tasks["rest"]  # the catch-all
    # Through the sidecar of `client`, which calls a and b: the same routing on its outbound address.
    assert tls_echo(ca, SIDECAR_ADDRESS, tcp_port, "a.test")["address"] == tasks["a"]
    assert tls_echo(ca, SIDECAR_ADDRESS, tcp_port, "b.test")["address"] == tasks["b"]
    # The sidecar has no catch-all (client does not call rest): a connection naming another name is closed.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_echo(ca, SIDECAR_ADDRESS, tcp_port, "other.test")
    assert sidecar.counter(f"listener.{SIDECAR_ADDRESS}_{tcp_port}.no_filter_chain_match") >= 1

    # What Envoy shows: one listener for the port, a chain per service matching its SNI names.
    name = f"tcp/port/{tcp_port}"
    dump = json.loads(edge.admin("/config_dump?resource=dynamic_listeners"))
    (listener,) = [c["active_state"]["listener"] for c in dump["configs"] if c["name"] == name]
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    chains = {c["name"]: c.get("filter_chain_match", {}).get("server_names") for c in listener["filter_chains"]}
    assert chains == {"a": ["a.test"], "b": ["*.b.test", "b.test"], "rest": None}
    assert edge.counter("tcp.a.downstream_cx_total") >= 3 and edge.counter("tcp.rest.downstream_cx_total") >= 3
    names = {c["name"] for c in json.loads(sidecar.admin("/config_dump?resource=dynamic_listeners"))["configs"]}
    assert name in names
    # The edge's access log names the SNI name of each connection.
    edge.process.wait_until(lambda: {"a.test", "b.test", "other.test"} <= logged_sni(edge), 10, "a log line per SNI name")


def logged_sni(envoy: EnvoyProcess) -> set[str]:
    found = set()
    for line in envoy.process.stdout_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "termination" in entry and entry.get("sni"):
            found.add(entry["sni"])
    return found


def test_a_service_naming_sni_names_joins_a_port_one_service_held_alone(
    stack: DemoStack, proxies: tuple[EnvoyProcess, EnvoyProcess], ca: LocalCa
) -> None:
    """`solo` alone on its port (no hosts) has listener tcp/solo; when `late` joins the port with an SNI
    name, the listener becomes tcp/port/<port> on the same port, and both are reached by name."""
    edge, _ = proxies
    port = free_port()
    cert, key = ca.issue("other.test").write(stack.work_dir, "solo")
    registered = stack.ecs.register_task_definition(**tls_echo_task_definition("solo", port, None, str(cert), str(key)))
    stack.create_service("solo", registered["taskDefinition"]["taskDefinitionArn"], 1)
    stack.wait_for_running("solo", 1)
    solo = echo_address(stack.running_tasks("solo")[0])
    edge.wait_for_hosts("solo", {solo}, timeout=30)
    edge.process.wait_until(lambda: "tcp/solo" in listener_names(edge), 20, "listener tcp/solo")
    assert tls_echo(ca, "127.0.0.1", port, "other.test")["address"] == solo

    cert, key = ca.issue("late.test").write(stack.work_dir, "late")
    registered = stack.ecs.register_task_definition(**tls_echo_task_definition("late", port, "late.test", str(cert), str(key)))
    stack.create_service("late", registered["taskDefinition"]["taskDefinitionArn"], 1)
    stack.wait_for_running("late", 1)
    late = echo_address(stack.running_tasks("late")[0])
    edge.wait_for_hosts("late", {late}, timeout=30)
    edge.process.wait_until(lambda: listener_names(edge) >= {f"tcp/port/{port}"} and "tcp/solo" not in listener_names(edge), 20, "the shared listener")
    edge.process.wait_until(lambda: port_answers(ca, port, "late.test") == late, 20, "late reached by its SNI name")
    for _ in range(3):
        assert tls_echo(ca, "127.0.0.1", port, "late.test")["address"] == late
        assert tls_echo(ca, "127.0.0.1", port, "other.test")["address"] == solo


def listener_names(envoy: EnvoyProcess) -> set[str]:
    return {entry["name"] for entry in json.loads(envoy.admin("/listeners?format=json"))["listener_statuses"]}


def port_answers(ca: LocalCa, port: int, server_name: str) -> str | None:
    """The task that answers `server_name` on the edge's `port`, None while nothing does."""
    try:
        return str(tls_echo(ca, "127.0.0.1", port, server_name)["address"])
    except (OSError, AssertionError):
        return None
