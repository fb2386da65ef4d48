"""``controlplane local-ecs``: run the local ECS API until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

import structlog

from controlplane.localecs.addresses import is_loopback
from controlplane.localecs.server import LocalEcsServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="controlplane local-ecs",
        description="Serve a local ECS (and EC2 DescribeInstances) API whose tasks are local processes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.0/8 only)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    parser.add_argument("--deactivating-seconds", type=float, default=1.0, help="drain delay before SIGTERM")
    parser.add_argument("--log-dir", default=None, help="directory for task stdout/stderr (default: a temp dir)")
    parser.add_argument("--stopped-retention-seconds", type=float, default=600.0, help="how long STOPPED tasks stay listable")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server; print ``{"event": "local_ecs.ready", "url": ...}`` once listening."""
    args = _parser().parse_args(argv)
    if not structlog.is_configured():
        # stdout carries the machine-readable ready line; logs go to stderr.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if not is_loopback(args.host):
        print(f"error: --host {args.host} is outside 127.0.0.0/8; the local ECS only listens on loopback", file=sys.stderr)
        return 2
    try:
        server = LocalEcsServer(
            args.host,
            args.port,
            deactivating_seconds=args.deactivating_seconds,
            log_dir=args.log_dir,
            stopped_retention_seconds=args.stopped_retention_seconds,
        )
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.start()
        print(json.dumps({"event": "local_ecs.ready", "url": server.url, "log_dir": server.ecs.log_dir}), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
