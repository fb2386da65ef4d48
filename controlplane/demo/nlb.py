"""A per-connection TCP balancer standing in for AWS's Network Load Balancer.

Each accepted TCP connection is pinned to ONE backend, chosen round robin, and
bytes are piped both ways until either side closes. So every call of one HTTP/2
connection lands on one task: the imbalance that per-call balancing in Envoy fixes.
Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Sequence
from types import TracebackType

from controlplane.routeguide.loopback import join_host_port, require_loopback_host

Backend = tuple[str, int]

_CHUNK = 64 * 1024
_CONNECT_TIMEOUT_S = 2.0


def _checked(backends: Sequence[Backend]) -> tuple[Backend, ...]:
    out = []
    for host, port in backends:
        require_loopback_host(host, what="backend")
        if not 0 < int(port) < 65536:
            raise ValueError(f"backend {host}:{port}: port outside 1-65535")
        out.append((host, int(port)))
    return tuple(out)


class ConnectionBalancer:
    """Listens on a loopback address; pins each accepted connection to one backend, round robin."""

    def __init__(self, listen_host: str, listen_port: int, backends: Sequence[Backend]) -> None:
        self._listen_host = require_loopback_host(listen_host, what="listen host")
        self._listen_port = listen_port
        self._backends = _checked(backends)
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections_per_backend: Counter[Backend] = Counter()

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0); only valid after start()."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("ConnectionBalancer is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def listen_host(self) -> str:
        return self._listen_host

    @property
    def backends(self) -> tuple[Backend, ...]:
        return self._backends

    def set_backends(self, backends: Sequence[Backend]) -> None:
        """Replace the targets for new connections; connections already open stay where they are (like NLB)."""
        self._backends = _checked(backends)  # one attribute swap, so safe to call from another thread

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._listen_host, self._listen_port)

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _pick(self, attempt: int) -> Backend | None:
        backends = self._backends
        if not backends:
            return None
        if attempt == 0:
            self._next += 1
        return backends[(self._next - 1 + attempt) % len(backends)]

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            await self._serve_connection(client_reader, client_writer)
        except asyncio.CancelledError:
            # close() cancels open connections; asyncio would log a cancelled callback task as an error.
            pass
        finally:
            self._pipes.discard(task)

    async def _serve_connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await self._connect_upstream()
            if upstream is None:
                return
            backend, up_reader, up_writer = upstream
            self.connections_per_backend[backend] += 1
            try:
                await self._pipe_both_ways(client_reader, client_writer, up_reader, up_writer)
            finally:
                up_writer.close()
        finally:
            client_writer.close()

    async def _connect_upstream(self) -> tuple[Backend, asyncio.StreamReader, asyncio.StreamWriter] | None:
        # Like NLB with an unhealthy target: a refused backend is skipped, the next one tried.
        for attempt in range(max(len(self._backends), 1)):
            backend = self._pick(attempt)
            if backend is None:
                return None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*backend), _CONNECT_TIMEOUT_S)
            except (OSError, asyncio.TimeoutError):
                continue
            return backend, reader, writer
        return None

    @staticmethod
    async def _pipe_both_ways(a_reader: asyncio.StreamReader, a_writer: asyncio.StreamWriter,
                              b_reader: asyncio.StreamReader, b_writer: asyncio.StreamWriter) -> None:
        """Copy both directions; when either side closes, close the other (HTTP/2 never half-closes)."""
        directions = [asyncio.create_task(_copy(a_reader, b_writer)), asyncio.create_task(_copy(b_reader, a_writer))]
        try:
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for direction in directions:
                direction.cancel()
            await asyncio.gather(*directions, return_exceptions=True)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()


class BalancerThread:
    """A ConnectionBalancer running on its own event loop thread, for synchronous callers."""

    def __init__(self, balancer: ConnectionBalancer, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.balancer = balancer
        self._loop = loop
        self._thread = thread

    @property
    def port(self) -> int:
        return self.balancer.port

    @property
    def address(self) -> str:
        """The ``host:port`` clients dial."""
        return join_host_port(self.balancer.listen_host, self.port)

    @property
    def connections_per_backend(self) -> dict[Backend, int]:
        return dict(self.balancer.connections_per_backend)

    def set_backends(self, backends: Sequence[Backend]) -> None:
        self.balancer.set_backends(backends)

    def close(self) -> None:
        """Stop the balancer and its thread; safe to call twice."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.balancer.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> BalancerThread:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def run_in_thread(listen_host: str, listen_port: int, backends: Sequence[Backend]) -> BalancerThread:
    """Start a ConnectionBalancer on a background thread; returns once it listens (or raises its error)."""
    balancer = ConnectionBalancer(listen_host, listen_port, backends)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(balancer.start())
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"nlb-{listen_host}", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    return BalancerThread(balancer, loop, thread)
