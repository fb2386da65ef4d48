"""Run the route guide as a (local) ECS task: ``python -m controlplane.routeguide --port 50051``.

See ``controlplane.routeguide.behaviour`` for the ``ROUTEGUIDE_*`` variables and
``controlplane.routeguide.task`` for ``LOCAL_ECS_HOST`` / ``LOCAL_ECS_PORT_<port>``
and ``ECS_TASK_ID`` / ``ECS_TASK_ARN`` / ``ECS_CONTAINER_NAME``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import structlog

from controlplane.routeguide.behaviour import Behaviour, BehaviourError
from controlplane.routeguide.server import RouteGuideServer
from controlplane.routeguide.task import BindAddress, BindError, TaskIdentity


def _json_logger() -> structlog.typing.FilteringBoundLogger:
    """JSON lines on stderr, one event per thing that happened."""
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(20),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        cache_logger_on_first_use=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.routeguide",
                                     description="Route guide demo gRPC server, run as a local ECS task.")
    parser.add_argument("--port", type=int, default=50051,
                        help="container port (default 50051); LOCAL_ECS_PORT_<port> overrides the bound port")
    parser.add_argument("--allow-non-loopback", action="store_true",
                        help="allow LOCAL_ECS_HOST outside 127.0.0.0/8")
    args = parser.parse_args(argv)
    try:
        behaviour = Behaviour.from_env()
        bind = BindAddress.resolve(args.port, allow_non_loopback=args.allow_non_loopback)
    except (BehaviourError, BindError) as exc:
        parser.error(str(exc))  # exits 2 with the message on stderr

    logger = _json_logger().bind(service="routeguide")
    server = RouteGuideServer(TaskIdentity.from_env(), behaviour, bind, logger)
    stop_requested = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except OSError as exc:
        logger.error("routeguide.bind_failed", error=str(exc))
        return 1
    while not stop_requested.wait(0.5):
        pass
    server.stop(reason=received[0] if received else "signal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
