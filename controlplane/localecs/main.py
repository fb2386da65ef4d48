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
        description="Serve a local ECS (and EC2 DescribeInstances, SQS, SNS) API whose tasks are local processes.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (127.0.0.0/8 only)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    parser.add_argument(
        "--deactivating-seconds", "--deregistration-delay-seconds", dest="deactivating_seconds", type=float, default=1.0,
        help="time a task of a service with loadBalancers stays DEACTIVATING before SIGTERM (the target group's deregistration delay)",
    )
    parser.add_argument("--default-stop-timeout-seconds", type=float, default=30.0, help="SIGTERM->SIGKILL grace for containers without stopTimeout (AWS: 30)")
    parser.add_argument(
        "--healthy-after-running-seconds", "--running-grace-seconds", dest="healthy_after_running_seconds", type=float,
        default=40.0, help="how long a new service task without health checks runs before it counts towards minimumHealthyPercent (AWS: 40)",
    )
    parser.add_argument("--drain-every-task", action="store_true", help="not AWS: every stopping task drains as if its service had a load balancer")
    parser.add_argument("--ipv6-bindings", choices=["after", "before", "none"], default="after", help="where a bridge port's '::' binding goes in networkBindings")
    parser.add_argument("--log-dir", default=None, help="directory for task stdout/stderr (default: a temp dir)")
    parser.add_argument("--stopped-retention-seconds", type=float, default=600.0, help="how long STOPPED tasks stay listable")
    parser.add_argument("--instances", type=int, default=2, help="EC2 container instances per cluster")
    parser.add_argument("--zones", default="", help="comma-separated availability zones (default: <region>a,b,c); instances take them in turn")
    parser.add_argument("--external-instances", type=int, default=0, help="ECS Anywhere (EXTERNAL) instances per cluster, addressed through SSM")
    parser.add_argument("--no-processes", action="store_true", help="address-only tasks: lifecycle and addresses, no processes (scale runs)")
    parser.add_argument("--events-queue", action="append", default=[], metavar="NAME", help="SQS queue that receives every ECS task state change event (repeatable)")
    parser.add_argument(
        "--events-topic", action="append", default=[], metavar="NAME",
        help="SNS topic that receives every ECS task state change event and fans it out to its queues (repeatable)",
    )
    parser.add_argument(
        "--events-topic-queue", action="append", default=[], metavar="NAME",
        help="SQS queue subscribed to every --events-topic, raw message delivery off: it receives SNS's envelope (repeatable: one per replica)",
    )
    parser.add_argument("--event-duplicate-rate", type=float, default=0.0, help="probability an event is delivered twice")
    parser.add_argument("--event-reorder-rate", type=float, default=0.0, help="probability an event is delivered after the next one")
    parser.add_argument("--throttle-rate", type=float, default=None, help="ThrottlingException above this many calls/s per ECS operation")
    parser.add_argument("--throttle-burst", type=float, default=None, help="burst allowed above --throttle-rate")
    parser.add_argument("--task-address-octet", type=int, default=10, help="awsvpc tasks get 127.N.x.y (another octet keeps two local ECSs apart)")
    parser.add_argument("--instance-address-octet", type=int, default=20, help="container instances get 127.N.x.y")
    parser.add_argument("--seed", type=int, default=None, help="seed of the injected randomness (duplicates, reordering, fault rates)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server; print ``{"event": "local_ecs.ready", "url": ...}`` once listening."""
    args = _parser().parse_args(argv)
    if not structlog.is_configured():
        # stdout carries the machine-readable ready line; logs go to stderr.
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    if args.events_topic_queue and not args.events_topic:
        print("error: --events-topic-queue subscribes queues to an --events-topic: give one", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(f"error: --host {args.host} is outside 127.0.0.0/8; the local ECS only listens on loopback", file=sys.stderr)
        return 2
    try:
        server = LocalEcsServer(
            args.host,
            args.port,
            deactivating_seconds=args.deactivating_seconds,
            default_stop_timeout_seconds=args.default_stop_timeout_seconds,
            drain_every_task=args.drain_every_task,
            healthy_after_running_seconds=args.healthy_after_running_seconds,
            ipv6_bindings=args.ipv6_bindings,
            log_dir=args.log_dir,
            stopped_retention_seconds=args.stopped_retention_seconds,
            instances_per_cluster=args.instances,
            zones=[zone.strip() for zone in args.zones.split(",") if zone.strip()],
            external_instances_per_cluster=args.external_instances,
            processes=not args.no_processes,
            event_queues=args.events_queue,
            event_topics={topic: args.events_topic_queue for topic in args.events_topic},
            event_duplicate_rate=args.event_duplicate_rate,
            event_reorder_rate=args.event_reorder_rate,
            throttle_rate=args.throttle_rate,
            throttle_burst=args.throttle_burst,
            seed=args.seed,
            task_address_octet=args.task_address_octet,
            instance_address_octet=args.instance_address_octet,
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
        queues = {q.name: q.url for q in server.ecs.sqs.queues()}
        topics = {t.name: t.arn for t in server.ecs.sns.topics()}
        ready = {"event": "local_ecs.ready", "url": server.url, "log_dir": server.ecs.log_dir, "queues": queues, "topics": topics}
        print(json.dumps(ready), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
