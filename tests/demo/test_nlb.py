"""The NLB stand-in pins each TCP connection, and so each HTTP/2 channel, to one task."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from controlplane.demo.nlb import ConnectionBalancer, run_in_thread
from controlplane.routeguide import client
from controlplane.routeguide.loopback import split_host_port
from controlplane.routeguide.process import RouteGuideProcess


@pytest.fixture(scope="module")
def two_tasks() -> Iterator[tuple[RouteGuideProcess, RouteGuideProcess]]:
    with RouteGuideProcess("127.0.32.1", task_id="task-a") as a, RouteGuideProcess("127.0.32.2", task_id="task-b") as b:
        yield a, b


def _backends(*procs: RouteGuideProcess) -> list[tuple[str, int]]:
    return [split_host_port(p.address) for p in procs]


@pytest.mark.integration
def test_one_channel_lands_on_one_task_two_channels_on_two(
        two_tasks: tuple[RouteGuideProcess, RouteGuideProcess]) -> None:
    a, b = two_tasks
    with run_in_thread("127.0.32.10", 0, _backends(a, b)) as nlb:
        first = client.count_calls(nlb.address, 100)
        assert first.failed == 0
        assert len(first.by_address) == 1 and first.succeeded == 100
        second = client.count_calls(nlb.address, 100)
        assert len(second.by_address) == 1 and second.succeeded == 100
        assert set(first.by_task_id) | set(second.by_task_id) == {"task-a", "task-b"}
        assert nlb.connections_per_backend == {backend: 1 for backend in _backends(a, b)}


@pytest.mark.integration
def test_every_rpc_kind_passes_through(two_tasks: tuple[RouteGuideProcess, RouteGuideProcess]) -> None:
    a, _ = two_tasks
    with run_in_thread("127.0.32.11", 0, _backends(a)) as nlb:
        served = client.exercise_all_kinds(nlb.address)
    assert {by.task_id for by in served.values()} == {"task-a"}


@pytest.mark.integration
def test_set_backends_moves_new_connections_only(two_tasks: tuple[RouteGuideProcess, RouteGuideProcess]) -> None:
    a, b = two_tasks
    with run_in_thread("127.0.32.12", 0, _backends(a)) as nlb:
        loop = client.LoadLoop(nlb.address, max_seconds=10).start()
        try:
            deadline = time.monotonic() + 5
            while loop.tally().succeeded == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            nlb.set_backends(_backends(b))
            assert client.count_calls(nlb.address, 5).by_task_id == {"task-b": 5}
        finally:
            tally = loop.stop()
        assert set(tally.by_task_id) == {"task-a"}  # the open connection stayed on its task


@pytest.mark.integration
def test_refused_backend_is_skipped(two_tasks: tuple[RouteGuideProcess, RouteGuideProcess]) -> None:
    a, _ = two_tasks
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.32.3", 0))
        dead = ("127.0.32.3", s.getsockname()[1])
    with run_in_thread("127.0.32.13", 0, [dead, *_backends(a)]) as nlb:
        for _ in range(2):
            assert client.count_calls(nlb.address, 3).by_task_id == {"task-a": 3}


def test_no_backends_closes_the_connection() -> None:
    async def scenario() -> bytes:
        balancer = ConnectionBalancer("127.0.32.14", 0, [])
        await balancer.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.32.14", balancer.port)
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return data
        finally:
            await balancer.close()

    assert asyncio.run(scenario()) == b""


def test_pipes_bytes_both_ways_and_close_cuts_open_connections() -> None:
    async def scenario() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1024):
                writer.write(data.upper())
                await writer.drain()
            writer.close()

        backend = await asyncio.start_server(echo, "127.0.32.5", 0)
        balancer = ConnectionBalancer("127.0.32.15", 0, [("127.0.32.5", backend.sockets[0].getsockname()[1])])
        await balancer.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.32.15", balancer.port)
            payload = b"x" * 300_000
            writer.write(payload)
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload.upper()
            await balancer.close()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        finally:
            await balancer.close()
            backend.close()
            await backend.wait_closed()

    asyncio.run(scenario())


@pytest.mark.parametrize(("listen", "backends"), [
    ("0.0.0.0", [("127.0.0.1", 1)]),
    ("127.0.0.1", [("10.0.0.1", 80)]),
])
def test_loopback_only(listen: str, backends: list[tuple[str, int]]) -> None:
    with pytest.raises(ValueError):
        ConnectionBalancer(listen, 0, backends)
    balancer = ConnectionBalancer("127.0.0.1", 0, [])
    with pytest.raises(ValueError):
        balancer.set_backends([("8.8.8.8", 53)])
