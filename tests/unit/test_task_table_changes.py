"""What discovery's task table tells the model: unchanged tasks keep their Task objects from one
state to the next, and the change log names exactly the tasks that came, went or changed."""

from __future__ import annotations

import dataclasses
import random

from controlplane.discovery.state import ChangeLog
from controlplane.discovery.task_table import Entry, Report, TaskTable

from .builders import task, task_definition

ORDERS = task_definition("orders", 1, {"xds.service": "orders"})


def report(task_id: str, address: str, version: int, health: str = "HEALTHY") -> Report:
    t = task(ORDERS, task_id, address, container_health=health)
    return Report(arn=t.arn, version=version, entry=Entry(t, ORDERS, version))


def test_a_full_read_that_finds_nothing_new_keeps_every_task_object_and_logs_nothing() -> None:
    table = TaskTable("prod")
    reports = [report(f"t{i}", f"127.0.0.{i}", 1) for i in range(1, 4)]
    table.reconcile(reports, [r.arn for r in reports], 0.0)
    first = table.state(0.0)
    again = [report(f"t{i}", f"127.0.0.{i}", 1) for i in range(1, 4)]  # equal, new objects
    table.reconcile(again, [r.arn for r in again], 1.0)
    second = table.state(1.0)
    assert all(a is b for a, b in zip(first.tasks, second.tasks))
    assert second.changes is first.changes and second.changes.between(first.position, second.position) == frozenset()  # type: ignore[union-attr]


def test_the_log_names_the_tasks_that_changed_since_any_earlier_state() -> None:
    table = TaskTable("prod")
    reports = [report(f"t{i}", f"127.0.0.{i}", 1) for i in range(1, 4)]
    table.reconcile(reports, [r.arn for r in reports], 0.0)
    first = table.state(0.0)
    table.apply_event(report("t2", "127.0.0.2", 2, health="UNHEALTHY"), 1.0)  # changed
    skipped = table.state(1.0)  # a state nobody applied
    table.apply_event(dataclasses.replace(report("t3", "127.0.0.3", 2), entry=None, stopped=True), 2.0)  # gone
    table.apply_event(report("t4", "127.0.0.4", 1), 2.0)  # new
    third = table.state(2.0)
    assert third.changes is first.changes
    assert third.changes.between(first.position, third.position) == {reports[1].arn, reports[2].arn, report("t4", "127.0.0.4", 1).arn}  # type: ignore[union-attr]
    assert third.changes.between(skipped.position, third.position) == {reports[2].arn, report("t4", "127.0.0.4", 1).arn}  # type: ignore[union-attr]
    assert third.tasks[0] is first.tasks[0]  # t1 never changed


def test_views_made_from_the_last_one_equal_views_made_from_scratch() -> None:
    """Random events, describes and full reads; every view lists the live tasks in ARN order and
    the task definitions they run, whether made from the last view or sorted afresh."""
    rng = random.Random(7)
    definitions = [task_definition("orders", revision, {"xds.service": "orders"}) for revision in (1, 2, 3)]
    table = TaskTable("prod")
    versions: dict[str, int] = {}
    for step in range(400):
        task_id = f"t{rng.randrange(40):02}"
        td = rng.choice(definitions)
        t = task(td, task_id, f"127.0.1.{rng.randrange(1, 200)}", container_health=rng.choice(["HEALTHY", "UNHEALTHY"]))
        version = versions[t.arn] = versions.get(t.arn, 0) + 1
        if rng.random() < 0.25:
            table.apply_event(Report(t.arn, version, stopped=True), float(step))
        elif rng.random() < 0.05:
            reports = [Report(x.arn, versions.get(x.arn, 1), Entry(x, td, versions.get(x.arn, 1))) for x in [t]]
            table.reconcile(reports, [r.arn for r in reports], float(step))
        else:
            table.apply_event(Report(t.arn, version, Entry(t, td, version)), float(step))
        if rng.random() < 0.5:
            view = table.state(float(step))
            live = sorted(table.entries(), key=lambda e: e.task.arn)
            assert view.tasks == tuple(e.task for e in live)
            assert dict(view.task_definitions) == {e.task_definition.arn: e.task_definition for e in live}


def test_the_change_log_stays_bounded_and_says_how_much_it_holds() -> None:
    log = ChangeLog(keep=3)
    for i in range(20):
        log.record(f"arn-{i}")
        assert len(log) <= 6  # at most 2 x keep: the size the discovery_cache_entries metric shows
    assert log.position == 20
    assert log.between(0, 20) is None  # forgotten: the model compares every task instead
    assert log.between(17, 20) == {"arn-17", "arn-18", "arn-19"}
    table = TaskTable("prod")
    table.apply_event(report("t1", "127.0.0.1", 1), 0.0)
    assert table.change_log_entries == 1
