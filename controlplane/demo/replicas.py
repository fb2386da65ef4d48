"""Several control-plane replicas against one local ECS, fed as in AWS: each replica has its own
SQS queue, subscribed to the stack's SNS topic (EventBridge -> SNS -> SQS) or, without a topic,
its own EventBridge target. Used by the replica integration test and bench/replicas.py."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import boto3
import grpc

from controlplane.demo.processes import ChildProcess, free_port
from controlplane.demo.stack import REGION, DemoStack
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc
from controlplane.proxy.bootstrap import XdsAddress


def _client(stack: DemoStack, service: str) -> Any:
    return boto3.client(service, endpoint_url=stack.ecs_url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local")


def replica_queue(
    stack: DemoStack, name: str, *, via_topic: bool = True, reorder_rate: float = 0.0, duplicate_rate: float = 0.0
) -> str:
    """A new replica's queue of ECS events, as an operator adds one: subscribed to the stack's topic
    (raw delivery off: SNS envelopes), or (no topic, or `via_topic` False) one more target of the
    events rule, which may reorder and duplicate independently of the other targets."""
    if stack.events_topic_arn and via_topic:
        sqs = _client(stack, "sqs")
        url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        _client(stack, "sns").subscribe(TopicArn=stack.events_topic_arn, Protocol="sqs", Endpoint=arn)
        return url
    body = {"queue": name, "reorder_rate": reorder_rate, "duplicate_rate": duplicate_rate}
    return str(stack.local_ecs_hook("POST", "/_local/events", body)["QueueUrl"])


class Replica:
    """One `controlplane serve` process with its own ports and queue."""

    def __init__(self, stack: DemoStack, name: str, queue_url: str, extra: tuple[str, ...] = (), *, xds_port: int | None = None) -> None:
        self.name = name
        self.queue_url = queue_url
        # `xds_port`: a replacement listens where the replica it replaces did (bootstraps list it).
        self.xds_port, self.admin_port, self.metrics_port = xds_port or free_port(), free_port(), free_port()
        self.started_at: float | None = None  # monotonic: start() and the moment it was stopped
        self.stopped_at: float | None = None
        self.process = ChildProcess(
            f"controlplane-{name}",
            [
                sys.executable, "-m", "controlplane", "serve", "--cluster", stack.cluster,
                "--xds-address", "127.0.0.1", "--xds-port", str(self.xds_port),
                "--admin-address", "127.0.0.1", "--admin-port", str(self.admin_port),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                "--dashboard-address", "127.0.0.1", "--dashboard-port", str(free_port()),
                "--events-queue-url", queue_url, "--log-format", "json", "--edge-plaintext",
                *extra,
            ],
            stack.work_dir,
            env=stack.aws_env(),
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    @property
    def xds(self) -> XdsAddress:
        return XdsAddress("127.0.0.1", self.xds_port)

    def start(self, wait: bool = True) -> Replica:
        self.started_at = time.monotonic()
        self.process.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.process.wait_until(lambda: "controlplane.ready" in self.log_text(), timeout, "first view of ECS")

    def log_text(self) -> str:
        try:
            return self.process.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log(self) -> list[dict[str, Any]]:
        events = []
        for line in self.log_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def terminate(self) -> None:
        """SIGTERM, as ECS stops a task: the replica drains (returns at once)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self._signal(signal.SIGKILL)

    def lifetime_minutes(self) -> float:
        """Minutes from start() to the first stop signal (or now)."""
        assert self.started_at is not None
        return ((self.stopped_at or time.monotonic()) - self.started_at) / 60

    def _signal(self, signum: int) -> None:
        self.stopped_at = self.stopped_at or time.monotonic()
        if self.process.proc is not None and self.process.proc.poll() is None:
            os.killpg(self.process.proc.pid, signum)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.process.proc is not None
        try:
            return self.process.proc.wait(timeout)
        except Exception:  # noqa: BLE001 - still running
            return None

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def status(self) -> api.Status:
        with grpc.insecure_channel(f"127.0.0.1:{self.admin_port}") as channel:
            return admin_pb2_grpc.AdminStub(channel).GetStatus(api.GetStatusRequest(), timeout=5)

    def proxies(self) -> list[api.Proxy]:
        with grpc.insecure_channel(f"127.0.0.1:{self.admin_port}") as channel:
            return list(admin_pb2_grpc.AdminStub(channel).ListProxies(api.ListProxiesRequest(), timeout=5).proxies)


def start_replicas(stack: DemoStack, names: list[str], *extra: str) -> list[Replica]:
    """Start replicas (each with a new queue) and wait until every one has read ECS once."""
    replicas = [Replica(stack, name, replica_queue(stack, f"replica-{name}"), extra).start(wait=False) for name in names]
    for replica in replicas:
        replica.wait_ready()
    return replicas
