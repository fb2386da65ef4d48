"""A TCP echo server run as a (local) ECS task: ``python -m controlplane.routeguide.tcp_echo --port 7000``.

The TCP sibling of the route guide (docs/routeguide.md, "TCP echo"): each line a client sends comes
back as one JSON line naming the task that served it, ``{"task_id", "address", "connection", "echo"}``,
so a test counts connections per task. It binds like the route guide (``LOCAL_ECS_HOST``,
``LOCAL_ECS_PORT_<port>``; loopback only unless told otherwise). On SIGTERM it goes on accepting
connections for ``--drain-delay`` seconds (0 by default; what an app does while its callers learn it
is going, and what lets a test tell that a proxy stopped sending it connections), then stops
accepting and lets open connections finish for up to ``--grace`` seconds. With ``--tls-cert`` and
``--tls-key`` it speaks TLS (a TLS server behind a proxy that passes TLS through, routed by SNI);
its replies then name the SNI name the client sent (``"sni"``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import ssl
import sys
from collections.abc import Sequence

import structlog

from controlplane.routeguide.loopback import join_host_port
from controlplane.routeguide.task import BindAddress, BindError, TaskIdentity

MAX_LINE_BYTES = 64 * 1024


class TcpEcho:
    """Echoes lines with the serving task's identity; counts connections."""

    def __init__(
        self, identity: TaskIdentity, bind: BindAddress, logger: structlog.typing.FilteringBoundLogger, tls: ssl.SSLContext | None = None
    ) -> None:
        self._identity = identity
        self._bind = bind
        self._log = logger
        self._tls = tls
        self._numbers = itertools.count(1)
        self._open: set[asyncio.Task[None]] = set()
        self.address = ""

    async def serve(self, stop: asyncio.Event, grace_s: float, drain_delay_s: float = 0.0) -> None:
        server = await asyncio.start_server(self._connection, self._bind.host, self._bind.port, limit=MAX_LINE_BYTES, ssl=self._tls)
        host, port = server.sockets[0].getsockname()[:2]
        self.address = join_host_port(host, port)
        self._log.info("tcp_echo.ready", address=self.address, task_id=self._identity.task_id, tls=self._tls is not None)
        await stop.wait()
        self._log.info("tcp_echo.stopping", drain_delay_s=drain_delay_s, open_connections=len(self._open))
        await asyncio.sleep(drain_delay_s)
        server.close()  # no new connections; open ones go on for up to grace_s
        if self._open:
            _, pending = await asyncio.wait(set(self._open), timeout=grace_s)
            for task in pending:
                task.cancel()
        await server.wait_closed()
        self._log.info("tcp_echo.stopped", connections=next(self._numbers) - 1)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        number = next(self._numbers)
        try:
            while line := await reader.readline():
                reply = {
                    "task_id": self._identity.task_id,
                    "address": self.address,
                    "connection": number,
                    "echo": line.decode(errors="replace").rstrip("\r\n"),
                }
                if self._tls is not None:
                    reply["sni"] = getattr(writer.get_extra_info("ssl_object"), "sni", None)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or sent a line too long: drop the connection
        finally:
            self._open.discard(task)
            writer.close()


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of TLS with `cert` and `key` (PEM files); it keeps the SNI name each client sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def remember(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        connection.sni = name  # type: ignore[attr-defined]  # read back in the replies

    context.sni_callback = remember  # type: ignore[assignment]
    return context


def _json_logger() -> structlog.typing.FilteringBoundLogger:
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(20),
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.JSONRenderer()],
        cache_logger_on_first_use=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.routeguide.tcp_echo", description="TCP echo server, run as a local ECS task.")
    parser.add_argument("--port", type=int, default=7000, help="container port (default 7000); LOCAL_ECS_PORT_<port> overrides the bound port")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds open connections may go on after SIGTERM (default 5)")
    parser.add_argument("--drain-delay", type=float, default=0.0, help="seconds new connections are still accepted after SIGTERM (default 0)")
    parser.add_argument("--tls-cert", help="PEM certificate: speak TLS (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--allow-non-loopback", action="store_true", help="allow LOCAL_ECS_HOST outside 127.0.0.0/8")
    args = parser.parse_args(argv)
    try:
        bind = BindAddress.resolve(args.port, allow_non_loopback=args.allow_non_loopback)
    except BindError as exc:
        parser.error(str(exc))
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    logger = _json_logger().bind(service="tcp_echo")
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    echo = TcpEcho(TaskIdentity.from_env(), bind, logger, tls)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await echo.serve(stop, args.grace, args.drain_delay)

    try:
        asyncio.run(run())
    except OSError as exc:
        logger.error("tcp_echo.bind_failed", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
