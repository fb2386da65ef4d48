"""TCP services (xds.protocol=tcp) with real parts: local ECS tasks running the TCP echo server, the
control plane, a real edge Envoy and a real sidecar. What a user sees: an echo through the edge
and through a sidecar of a service that declares the upstream, connections spread over both tasks,
and a task ECS stops gets no new connection while its open one goes on. Loops are bounded in count.
"""

from __future__ import annotations

import json
import socket
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import free_port
from controlplane.demo.stack import DemoStack, routeguide_task_definition

pytestmark = pytest.mark.integration

ECHO_PORT = 7000
SIDECAR_ADDRESS = "127.0.0.2"  # the sidecar's outbound address: the edge listens on 127.0.0.1 at the same port
CONNECTIONS = 20


def echo_task_definition(tcp_port: int) -> dict[str, Any]:
    definition = routeguide_task_definition(
        "echo",
        service="echo",
        labels={
            "xds.port": str(ECHO_PORT), "xds.protocol": "tcp", "xds.route.prefix": None,  # type: ignore[dict-item]
            "xds.route.port": str(tcp_port), "xds.health.check": "tcp", "xds.health.interval": "1s", "xds.health.timeout": "500ms",
            "xds.outlier.consecutive-local-origin-failures": "3",
        },
    )
    container = definition["containerDefinitions"][0]
    container["command"] = [sys.executable, "-m", "controlplane.routeguide.tcp_echo", "--port", str(ECHO_PORT), "--grace", "20", "--drain-delay", "10"]
    container["portMappings"] = [{"containerPort": ECHO_PORT, "protocol": "tcp"}]
    container["stopTimeout"] = 30
    return definition


def echo_address(task: dict[str, Any]) -> str:
    """`host:port` of an echo task, as the echo server names itself in its replies."""
    for attachment in task.get("attachments", ()):
        for detail in attachment.get("details", ()):
            if detail.get("name") == "privateIPv4Address":
                return f"{detail['value']}:{ECHO_PORT}"
    raise AssertionError(f"task {task['taskArn']} has no address")


class EchoConnection:
    """One TCP connection; each line sent comes back naming the task at the other end."""

    def __init__(self, host: str, port: int) -> None:
        self._socket = socket.create_connection((host, port), timeout=5)
        self._file = self._socket.makefile("rwb")

    def echo(self, text: str) -> dict[str, Any]:
        self._file.write(text.encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        assert line, "the connection was closed without a reply"
        reply: dict[str, Any] = json.loads(line)
        assert reply["echo"] == text, reply
        return reply

    def close(self) -> None:
        self._file.close()
        self._socket.close()


def spread(host: str, port: int, n: int = CONNECTIONS) -> Counter[str]:
    """The task (address) that served each of `n` new connections."""
    served: Counter[str] = Counter()
    for number in range(n):
        connection = EchoConnection(host, port)
        try:
            served[connection.echo(f"hello {number}")["address"]] += 1
        finally:
            connection.close()
    return served


@pytest.fixture(scope="module")
def tcp_port() -> int:
    """The echo service's xds.route.port: where the edge and the sidecars listen for it."""
    return free_port()


@pytest.fixture(scope="module")
def stack(tcp_port: int) -> Iterator[DemoStack]:
    # ECS signals a stopped task of a service without a load balancer at once; the echo server goes on
    # accepting connections for 10 s (--drain-delay): the window in which it must get no new one.
    with DemoStack(cluster="tcp", poll_interval=0.5, deactivating_seconds=1.0) as stack:
        stack.start_local_ecs()
        echo = stack.ecs.register_task_definition(**echo_task_definition(tcp_port))
        stack.create_service("echo", echo["taskDefinition"]["taskDefinitionArn"], 2)
        stack.create_service("client", stack.register(family="client", service="client", labels={"xds.upstreams": "echo"}), 1)
        stack.wait_for_running("echo", 2)
        stack.wait_for_running("client", 1)
        stack.start_control_plane()
        yield stack


@pytest.fixture(scope="module")
def proxies(stack: DemoStack) -> tuple[EnvoyProcess, EnvoyProcess]:
    edge = stack.start_envoy("edge-tcp")
    sidecar = stack.start_sidecar("sidecar-client", "client", outbound_address=SIDECAR_ADDRESS)
    tasks = {echo_address(t) for t in stack.running_tasks("echo")}
    edge.wait_for_hosts("echo", tasks, timeout=30)
    sidecar.wait_for_hosts("echo", tasks, timeout=30)
    return edge, sidecar


def test_echo_through_the_edge_and_a_sidecar_spreads_connections_over_both_tasks(
    stack: DemoStack, proxies: tuple[EnvoyProcess, EnvoyProcess], tcp_port: int
) -> None:
    edge, sidecar = proxies
    port = tcp_port
    tasks = {echo_address(t) for t in stack.running_tasks("echo")}
    assert len(tasks) == 2

    through_edge = spread("127.0.0.1", port)
    assert set(through_edge) == tasks and sum(through_edge.values()) == CONNECTIONS, through_edge
    # Per connection, not per line: every line of one connection is served by the same task.
    connection = EchoConnection("127.0.0.1", port)
    try:
        assert len({connection.echo(f"line {n}")["address"] for n in range(5)}) == 1
    finally:
        connection.close()

    through_sidecar = spread(SIDECAR_ADDRESS, port)
    assert set(through_sidecar) == tasks and sum(through_sidecar.values()) == CONNECTIONS, through_sidecar

    # The sidecar of one echo task: its inbound listener takes TCP connections to its own app.
    app = sorted(tasks)[0]
    app_host, app_port = app.rsplit(":", 1)
    inbound = free_port()
    stack.start_sidecar("sidecar-echo", "echo", inbound_address="127.0.0.1", inbound_port=inbound, app_address=app_host, app_port=int(app_port))
    edge.process.wait_until(lambda: port_open("127.0.0.1", inbound), 20, "the echo sidecar's inbound listener")
    assert spread("127.0.0.1", inbound, 5) == {app: 5}

    # What Envoy shows: a TCP proxy listener for the service; the edge logged every connection.
    listeners = json.loads(edge.admin("/listeners?format=json"))["listener_statuses"]
    assert {entry["name"] for entry in listeners} >= {"edge", "tcp/echo"}
    assert edge.counter("tcp.echo.downstream_cx_total") >= CONNECTIONS + 1
    assert sidecar.counter("tcp.echo.downstream_cx_total") >= CONNECTIONS
    # The edge's access log has a line per connection, naming the task that served it.
    edge.process.wait_until(lambda: len(tcp_log(edge)) >= CONNECTIONS, 10, "a log line per connection")
    assert {entry["upstream_host"] for entry in tcp_log(edge)} == tasks
    # The sidecar of `client` knows only what `client` calls.
    assert not sidecar.hosts("client")


def test_a_stopped_task_gets_no_new_connection_while_its_open_one_goes_on(
    stack: DemoStack, proxies: tuple[EnvoyProcess, EnvoyProcess], tcp_port: int
) -> None:
    edge, _ = proxies
    port = tcp_port
    tasks = {echo_address(t): t for t in stack.running_tasks("echo")}
    stopped_address = sorted(tasks)[0]
    # A connection open to the task about to stop (round robin reaches it within a few tries).
    opened = [EchoConnection("127.0.0.1", port) for _ in range(4)]
    kept = next(c for c in opened if c.echo("before")["address"] == stopped_address)
    for connection in opened:
        if connection is not kept:
            connection.close()

    stack.ecs.stop_task(cluster=stack.cluster, task=tasks[stopped_address]["taskArn"], reason="tcp test")
    edge.process.wait_until(lambda: stopped_address not in edge.healthy_hosts("echo") and bool(edge.healthy_hosts("echo")), 15, "the stopped task drained")
    # The task still accepts connections (its drain delay): what Envoy does not send it, it would have served.
    host, task_port = stopped_address.rsplit(":", 1)
    direct = EchoConnection(host, int(task_port))
    try:
        assert direct.echo("direct")["address"] == stopped_address
    finally:
        direct.close()

    served = spread("127.0.0.1", port)
    assert stopped_address not in served and sum(served.values()) == CONNECTIONS, served
    # The connection opened before the stop is still served by the stopped task.
    try:
        assert kept.echo("after")["address"] == stopped_address
    finally:
        kept.close()



def tcp_log(envoy: EnvoyProcess) -> list[dict[str, Any]]:
    """The access log lines of the edge's TCP listener for the echo service."""
    entries = []
    for line in envoy.process.stdout_path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("upstream_service") == "echo" and "termination" in entry:
            entries.append(entry)
    return entries


def port_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False
