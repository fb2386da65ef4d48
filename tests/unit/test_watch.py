"""ClusterWatch: fail static on errors, publishing at start-up, reading cadence, and what happens to
each SQS message (deleted after publishing, left for the dead-letter queue, counted)."""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Sequence

from controlplane.discovery.cadence import Cadence, Debounce, deployment_in_progress, poll_delay
from controlplane.discovery.reader import ClusterReader, ReadResult
from controlplane.discovery.sqs_events import MAX_RECEIVES, QueueMessage
from controlplane.discovery.state import ClusterState
from controlplane.discovery.watch import ClusterWatch

from .builders import cluster_state, task, task_definition
from .ecs_stubs import PREFIX, awsvpc_task, event_body, event_detail, td_arn

CLUSTER = "prod"


class FakeReader(ClusterReader):
    """Returns queued outcomes per cluster, in order: a ClusterState, or an exception to raise."""

    def __init__(self, outcomes: Mapping[str, Sequence[ClusterState | Exception]], fail_apply: bool = False) -> None:
        super().__init__(ecs=None, ec2=None)
        self.outcomes = {cluster: list(items) for cluster, items in outcomes.items()}
        self.fail_apply = fail_apply
        self.applied: list[list[Mapping[str, Any]]] = []

    def read(self, cluster: str) -> ReadResult:
        items = self.outcomes[cluster]
        outcome = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(outcome, Exception):
            raise outcome
        return ReadResult(outcome, {"ListTasks": 1, "DescribeTasks": 1})

    def apply(self, cluster: str, changes: Any, *, trust_details: bool = True) -> ReadResult:
        if self.fail_apply:
            raise RuntimeError("ThrottlingException")
        self.applied.append(list(changes))
        state = self.outcomes[cluster][0]
        assert isinstance(state, ClusterState)
        return ReadResult(ClusterState(cluster, state.tasks, {}, state.synced_at + 1), {}, len(self.applied[-1]))


class FakeQueue:
    failing = False
    queue_url = "http://127.0.0.1/000000000000/events"

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, messages: list[QueueMessage]) -> int:
        self.deleted.extend(m.receipt_handle for m in messages)
        return 1

    def stop(self) -> None:
        pass


def _view(cluster: str, *addresses: str) -> ClusterState:
    td = task_definition("orders", labels={"xds.service": "orders"})
    return cluster_state([task(td, f"t{i}", address, cluster=cluster) for i, address in enumerate(addresses)], [td], cluster=cluster)


def _watch(reader: FakeReader, queue: FakeQueue | None = None, **options: Any) -> tuple[ClusterWatch, list[list[ClusterState]], list[tuple[str, str | None]]]:
    published: list[list[ClusterState]] = []
    counted: list[tuple[str, str | None]] = []
    watch = ClusterWatch(
        list(reader.outcomes),
        reader,
        published.append,
        events=queue,  # type: ignore[arg-type]
        on_message=lambda outcome, detail_type: counted.append((outcome, detail_type)),
        **options,
    )
    return watch, published, counted


def _run(*steps: Any) -> None:
    async def scenario() -> None:
        for step in steps:
            await step()

    asyncio.run(scenario())


# -- fail static, start-up ------------------------------------------------------------------------


def test_a_failed_sync_keeps_the_last_view_and_reports_the_error() -> None:
    first = _view(CLUSTER, "127.0.0.1", "127.0.0.2")
    watch, published, _ = _watch(FakeReader({CLUSTER: [first, RuntimeError("ECS said no")]}))

    _run(watch.sync_once, watch.sync_once)

    assert published == [[first]]
    status = watch.status[CLUSTER]
    assert status.last_error == "RuntimeError: ECS said no"
    assert status.consecutive_failures == 1
    assert status.last_success_at == first.synced_at
    assert watch.first_view.is_set()


def test_recovery_clears_the_error_and_publishes_the_new_view() -> None:
    first, later = _view(CLUSTER, "127.0.0.1"), _view(CLUSTER, "127.0.0.1", "127.0.0.3")
    watch, published, _ = _watch(FakeReader({CLUSTER: [first, RuntimeError("boom"), later]}))

    _run(watch.sync_once, watch.sync_once, watch.sync_once)

    assert published == [[first], [later]]
    assert watch.status[CLUSTER].last_error is None
    assert watch.status[CLUSTER].consecutive_failures == 0


def test_an_unchanged_view_is_not_published_again() -> None:
    watch, published, _ = _watch(FakeReader({CLUSTER: [_view(CLUSTER, "127.0.0.1"), _view(CLUSTER, "127.0.0.1")]}))

    _run(watch.sync_once, watch.sync_once)

    assert len(published) == 1


def test_a_cluster_failing_at_start_up_holds_the_others_back_for_one_retry_only() -> None:
    prod, staging = _view("prod", "127.0.0.1"), _view("staging", "127.0.1.1")
    watch, published, _ = _watch(
        FakeReader({"prod": [prod], "staging": [RuntimeError("AccessDenied"), RuntimeError("AccessDenied"), staging]})
    )

    _run(watch.sync_once)
    assert published == [] and not watch.first_view.is_set()

    # Its retry fails too: the others are published, the failing one is reported.
    _run(watch.sync_once)
    assert published == [[prod]] and watch.first_view.is_set()
    assert watch.status["staging"].last_error == "RuntimeError: AccessDenied"

    _run(watch.sync_once)
    assert published == [[prod], [prod, staging]]


def test_a_cluster_that_recovers_at_its_retry_is_published_with_the_others() -> None:
    prod, staging = _view("prod", "127.0.0.1"), _view("staging", "127.0.1.1")
    watch, published, _ = _watch(FakeReader({"prod": [prod], "staging": [RuntimeError("AccessDenied"), staging]}))

    _run(watch.sync_once, watch.sync_once)

    assert published == [[prod, staging]]


# -- cadence ---------------------------------------------------------------------------------------


def test_polls_come_faster_while_a_deployment_is_in_progress_or_health_is_awaited() -> None:
    cadence = Cadence(poll_interval=5.0, deployment_poll_interval=1.0, health_refresh=2.0)
    td = task_definition("orders", labels={"xds.service": "orders"})
    checked = task_definition("orders", labels={"xds.service": "orders"}, health_check=True)
    old = task(td, "old", "127.0.0.1", started_by="ecs-svc/1")
    new = task(td, "new", "127.0.0.2", started_by="ecs-svc/2")
    starting = task(td, "starting", "127.0.0.3", last_status="PENDING", started_by="ecs-svc/2")
    leaving = task(td, "leaving", "127.0.0.4", desired_status="STOPPED", started_by="ecs-svc/1")

    assert poll_delay(cluster_state([old], [td]), cadence) == 5.0
    assert poll_delay(cluster_state([old, starting], [td]), cadence) == 1.0
    assert poll_delay(cluster_state([old, new], [td]), cadence) == 1.0
    # The old deployment's last task is leaving: done.
    assert not deployment_in_progress([new, leaving])
    assert poll_delay(cluster_state([task(checked, "c", "127.0.0.5", container_health="UNKNOWN")], [checked]), cadence) == 2.0
    assert poll_delay(cluster_state([task(checked, "c", "127.0.0.5", container_health="HEALTHY")], [checked]), cadence) == 5.0


# -- events ----------------------------------------------------------------------------------------


def _message(handle: str, cluster: str, version: int, receive_count: int = 1) -> QueueMessage:
    detail = event_detail(awsvpc_task(1, td_arn("orders", 3)), version=version)
    detail["clusterArn"] = f"{PREFIX}:cluster/{cluster}"
    return QueueMessage(handle, event_body(detail), handle, receive_count)


def test_messages_are_deleted_after_the_change_is_published_and_kept_when_it_fails() -> None:
    def scenario(fail: bool) -> tuple[FakeQueue, FakeReader, list[tuple[str, str | None]]]:
        reader = FakeReader({CLUSTER: [ClusterState(CLUSTER, (), {}, 1.0)]}, fail_apply=fail)
        queue = FakeQueue()
        watch, _, counted = _watch(reader, queue)
        messages = [
            _message("a", CLUSTER, 1),
            _message("b", CLUSTER, 2),
            _message("other", "elsewhere", 1),
            QueueMessage("action", event_body({}, "ECS Service Action"), "action"),
        ]
        _run(watch.sync_once, lambda: watch.apply_messages(messages))
        return queue, reader, counted

    queue, reader, counted = scenario(fail=False)
    assert sorted(queue.deleted) == ["a", "action", "b", "other"]
    assert [len(batch) for batch in reader.applied] == [2]
    assert sorted(counted) == [("applied", None), ("applied", None), ("ignored", "ECS Service Action"), ("other_cluster", None)]

    queue, _, counted = scenario(fail=True)
    # Not applied: left for the queue to redeliver (and redrive to the dead-letter queue).
    assert sorted(queue.deleted) == ["action", "other"]
    assert ("retried", None) in counted


def test_an_unreadable_message_is_counted_and_left_for_the_dead_letter_queue() -> None:
    reader = FakeReader({CLUSTER: [ClusterState(CLUSTER, (), {}, 1.0)]})
    queue = FakeQueue()
    watch, _, counted = _watch(reader, queue)
    junk = [QueueMessage("junk", "{not json", "m1", 1), QueueMessage("old-junk", "{not json", "m2", MAX_RECEIVES)]

    _run(watch.sync_once, lambda: watch.apply_messages(junk))

    assert counted == [("unreadable", None), ("unreadable", None)]
    # Still here after MAX_RECEIVES receives: the queue has no redrive policy; stop the loop.
    assert queue.deleted == ["old-junk"]


def test_nothing_from_events_is_applied_before_the_first_full_read() -> None:
    reader = FakeReader({CLUSTER: [ClusterState(CLUSTER, (), {}, 1.0)]})
    queue = FakeQueue()
    watch, published, _ = _watch(reader, queue)

    _run(lambda: watch.apply_messages([_message("a", CLUSTER, 1)]))

    assert queue.deleted == [] and published == [] and reader.applied == []


def test_a_burst_is_collected_until_quiet_and_bounded_by_the_maximum() -> None:
    async def scenario() -> tuple[int, int]:
        reader = FakeReader({CLUSTER: [ClusterState(CLUSTER, (), {}, 1.0)]})
        watch, _, _ = _watch(reader, FakeQueue(), cadence=Cadence(debounce=Debounce(quiet=0.05, max=0.3)))
        inbox: asyncio.Queue[list[QueueMessage]] = asyncio.Queue()

        async def drip(count: int, gap: float) -> None:
            for i in range(count):
                inbox.put_nowait([QueueMessage(str(i), "{}")])
                await asyncio.sleep(gap)

        feeder = asyncio.create_task(drip(3, 0.01))
        quiet_burst = await watch._collect(inbox, 1.0)
        await feeder
        feeder = asyncio.create_task(drip(100, 0.02))  # never quiet: cut at the maximum
        bounded = await watch._collect(inbox, 1.0)
        feeder.cancel()
        return len(quiet_burst), len(bounded)

    quiet, bounded = asyncio.run(scenario())
    assert quiet == 3
    assert 5 <= bounded <= 20


def test_event_mode_reads_every_poll_interval_while_the_queue_fails() -> None:
    reader = FakeReader({CLUSTER: [_view(CLUSTER, "127.0.0.1")]})
    queue = FakeQueue()
    reads: list[float] = []
    original = reader.read

    def counting_read(cluster: str) -> ReadResult:
        reads.append(1)
        return original(cluster)

    reader.read = counting_read  # type: ignore[method-assign]
    watch, _, _ = _watch(reader, queue, cadence=Cadence(poll_interval=0.05, resync_interval=300))

    async def scenario() -> None:
        await watch.run_due()  # the first full read; the next is due in 300 s
        await asyncio.sleep(0.1)
        await watch.run_due()
        assert len(reads) == 1
        queue.failing = True  # type: ignore[misc]
        await watch.run_due()
        await asyncio.sleep(0.1)
        await watch.run_due()

    asyncio.run(scenario())
    assert len(reads) >= 2
