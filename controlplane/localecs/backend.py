"""``LocalEcs``: the local ECS's parts wired together, plus the scheduler thread that drives them.

Thread-safe: every part takes the one ``RLock`` (``lock``); task runner threads take it for
each state change, and the HTTP layer holds it for a whole operation so that a response
never mixes two states. The API modules (``api_ecs``, ``api_ec2``, ``api_ssm``) call the
parts: ``clusters``, ``task_definitions``, ``tasks``, ``services``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Mapping, Sequence

import structlog

from controlplane.localecs.addresses import AddressPool, HostPortAllocator, InstanceAddressPool
from controlplane.localecs.clusters import Clusters, default_zones
from controlplane.localecs.containers import ContainerFactory
from controlplane.localecs.eventbridge import EventStream, task_state_change
from controlplane.localecs.faults import FaultInjector
from controlplane.localecs.lifecycle import AWS_DEFAULT_STOP_TIMEOUT_SECONDS, Timing
from controlplane.localecs.model import Arns, Task
from controlplane.localecs.render import render_task
from controlplane.localecs.scheduler import AWS_HEALTHY_AFTER_RUNNING_SECONDS
from controlplane.localecs.services import Services
from controlplane.localecs.sns import LocalSns, Topic
from controlplane.localecs.sqs import LocalSqs, Queue
from controlplane.localecs.taskdefs import TaskDefinitions
from controlplane.localecs.tasks import Tasks

TASK_SUBNET_OCTET = 10
INSTANCE_SUBNET_OCTET = 20


class LocalEcs:
    """An ECS control plane whose tasks are local processes on loopback addresses."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        provisioning_seconds: float = 0.2,
        pending_seconds: float = 0.2,
        deactivating_seconds: float = 1.0,
        start_timeout_seconds: float = 10.0,
        default_stop_timeout_seconds: float = AWS_DEFAULT_STOP_TIMEOUT_SECONDS,
        deprovisioning_seconds: float = 0.2,
        drain_every_task: bool = False,
        healthy_after_running_seconds: float = AWS_HEALTHY_AFTER_RUNNING_SECONDS,
        ipv6_bindings: str = "after",
        stopped_retention_seconds: float = 600.0,
        instances_per_cluster: int = 2,
        zones: tuple[str, ...] | list[str] = (),
        log_dir: str | None = None,
        scheduler_interval_seconds: float = 0.05,
        task_address_octet: int = TASK_SUBNET_OCTET,
        instance_address_octet: int = INSTANCE_SUBNET_OCTET,
        external_instances_per_cluster: int = 0,
        processes: bool = True,
        event_queues: tuple[str, ...] | list[str] = (),
        event_topics: Mapping[str, Sequence[str]] | None = None,
        event_duplicate_rate: float = 0.0,
        event_reorder_rate: float = 0.0,
        throttle_rate: float | None = None,
        throttle_burst: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.arns = Arns(region=region, account=account_id)
        self.timing = Timing(
            provisioning_seconds=provisioning_seconds,
            pending_seconds=pending_seconds,
            deactivating_seconds=deactivating_seconds,
            start_timeout_seconds=start_timeout_seconds,
            default_stop_timeout_seconds=default_stop_timeout_seconds,
            deprovisioning_seconds=deprovisioning_seconds,
            drain_every_task=drain_every_task,
        )
        self.stopped_retention_seconds = stopped_retention_seconds
        # The region's availability zones: container instances take them in turn, Fargate tasks spread over them.
        self.zones = tuple(zones) or default_zones(region)
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="local-ecs-logs-")
        os.makedirs(self.log_dir, exist_ok=True)
        self.lock = threading.RLock()
        # Set by close(): no task launches after it, and SQS long polls end early.
        self.closing = threading.Event()
        self.sqs = LocalSqs(region)
        self.sns = LocalSns(self.sqs, region)
        self.event_stream = EventStream(self.sqs, seed, self.sns)
        self.faults = FaultInjector(seed)
        if throttle_rate:
            self.faults.throttle(throttle_rate, throttle_burst)
        for name in event_queues:
            self.route_events(name, duplicate_rate=event_duplicate_rate, reorder_rate=event_reorder_rate)
        for topic_name, queue_names in (event_topics or {}).items():
            self.route_events_to_topic(topic_name, queue_names, duplicate_rate=event_duplicate_rate, reorder_rate=event_reorder_rate)
        # Two local ECS servers on one machine need different octets, or their tasks collide.
        self.clusters = Clusters(
            self.lock,
            self.arns,
            InstanceAddressPool(instance_address_octet),
            instances_per_cluster=instances_per_cluster,
            external_instances_per_cluster=external_instances_per_cluster,
            zones=self.zones,
        )
        self.task_definitions = TaskDefinitions(self.lock, self.arns)
        containers = ContainerFactory(
            self.arns, HostPortAllocator(), ipv6_bindings=ipv6_bindings, default_stop_timeout_seconds=default_stop_timeout_seconds
        )
        self.tasks = Tasks(
            self.lock,
            self.arns,
            self.timing,
            containers,
            AddressPool(task_address_octet),
            log_dir=self.log_dir,
            processes=processes,
            closing=self.closing,
            on_change=self._task_changed,
            on_finished=self._task_finished,
            zones=self.zones,
        )
        self.services = Services(
            self.lock, self.arns, self.clusters, self.tasks, self.closing, healthy_after_running_seconds=healthy_after_running_seconds
        )
        self._scheduler_interval = scheduler_interval_seconds
        self._log = structlog.get_logger()
        self._thread = threading.Thread(target=self._scheduler_loop, name="local-ecs-scheduler", daemon=True)
        self._thread.start()

    # --- events, queues and faults --------------------------------------------------------

    def _task_changed(self, task: Task) -> None:
        """Emit the task's state change event (called under the lock, after every change)."""
        if self.event_stream.active:
            self.event_stream.emit(task_state_change(render_task(task), self.region, self.account_id, task.updated_at))

    def _task_finished(self, task: Task) -> None:
        self.services.task_finished(task)

    def route_events(self, queue_name: str, *, duplicate_rate: float = 0.0, reorder_rate: float = 0.0) -> Queue:
        """Deliver every ECS task state change to SQS queue ``queue_name`` (created if missing),
        as an EventBridge rule on ``source: aws.ecs`` with that queue as target would."""
        queue = self.sqs.create_queue(queue_name)
        self.event_stream.route(queue, duplicate_rate=duplicate_rate, reorder_rate=reorder_rate)
        return queue

    def route_events_to_topic(
        self, topic_name: str, queue_names: Sequence[str] = (), *, duplicate_rate: float = 0.0, reorder_rate: float = 0.0
    ) -> Topic:
        """Deliver every ECS task state change to SNS topic ``topic_name`` (an EventBridge rule with
        an SNS target), and subscribe SQS queues ``queue_names`` to it (created if missing; raw
        message delivery off, as AWS's default: each queue receives SNS's JSON envelope)."""
        topic = self.sns.create_topic(topic_name)
        for name in queue_names:
            self.sns.subscribe(topic.arn, "sqs", self.sqs.create_queue(name).arn)
        self.event_stream.route(topic, duplicate_rate=duplicate_rate, reorder_rate=reorder_rate)
        return topic

    def inject_faults(
        self,
        operation: str = "*",
        error: str | None = "ServerException",
        rate: float = 1.0,
        latency: float = 0.0,
        duration: float | None = None,
        service: str = "ecs",
    ) -> int:
        """Fail (``error`` with probability ``rate``) and/or delay (``latency`` s) calls to
        ``service``'s ``operation`` ("*" = all) for ``duration`` seconds or until cleared."""
        return self.faults.inject(operation=operation, error=error, rate=rate, latency=latency, duration=duration, service=service)

    def clear_faults(self, fault_id: int | None = None) -> None:
        self.faults.clear(fault_id)

    def throttle(self, rate: float | None, burst: float | None = None, operation: str = "*", service: str = "ecs") -> None:
        """ThrottlingException above ``rate`` calls/s per operation (None lifts the limit)."""
        self.faults.throttle(rate, burst, operation=operation, service=service)

    # --- the scheduler thread ---------------------------------------------------------------

    def _scheduler_loop(self) -> None:
        while not self.closing.wait(self._scheduler_interval):
            try:
                self.services.reconcile()
                self.tasks.expire_stopped(self.stopped_retention_seconds)
                self.event_stream.flush(older_than=0.2)
            except Exception:  # keep scheduling whatever one tick hit
                self._log.exception("local_ecs.scheduler_tick_failed")

    # --- shutdown ---------------------------------------------------------------------------

    def close(self, timeout: float = 30.0) -> None:
        """Stop every task (SIGTERM, then SIGKILL after its stopTimeout) and wait for them."""
        if self.closing.is_set():
            return
        with self.lock:
            # Under the lock: no request can launch a task after this point.
            self.closing.set()
        self.sqs.stop_waiters()
        self._thread.join(timeout=5)
        stopped = self.tasks.stop_all(timeout)
        self._log.info("local_ecs.closed", tasks=stopped)

    def __enter__(self) -> LocalEcs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
