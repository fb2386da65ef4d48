"""The incremental mesh builder: after any sequence of views it holds the mesh build_mesh builds
from the last view, unchanged services keep their identity, the delta names exactly what
changed, and each task definition's labels are parsed once."""

from __future__ import annotations

import dataclasses
from functools import partial

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.discovery.state import ChangeLog, ClusterState, Task, TaskDefinition
from controlplane.model.build import build_mesh, parse_task_definition
from controlplane.model.delta import mesh_delta
from controlplane.model.incremental import MeshBuilder
from controlplane.model.label_cache import TaskDefinitionLabels
from controlplane.model.mesh import EndpointHealth, Mesh

from .builders import cluster_state, task, task_definition

# Task definitions whose interplay exercises every step of the build: two families declaring one
# service (same and different settings), revisions that disagree, a route conflict, a shadowed
# route, weights and upstreams naming services that come and go, a per-revision split, a label error.
POOL: tuple[TaskDefinition, ...] = (
    task_definition("orders", 1, {"xds.service": "orders", "xds.route.prefix": "/orders/", "xds.upstreams": "users,ghost"}),
    task_definition("orders", 2, {"xds.service": "orders", "xds.route.prefix": "/orders/", "xds.route.priority": "5"}),
    task_definition("intruder", 1, {"xds.service": "orders", "xds.route.prefix": "/orders/"}),
    task_definition("intruder", 2, {"xds.service": "orders", "xds.route.prefix": "/other/"}),
    task_definition("users", 3, {"xds.service": "users", "xds.route.weights": "users:90,users-next:10"}),
    task_definition("users-next", 1, {"xds.service": "users-next", "xds.route.enabled": "false"}),
    task_definition("grabber", 1, {"xds.service": "grabber", "xds.route.prefix": "/orders/"}),
    task_definition("catch", 1, {"xds.service": "catch", "xds.route.prefix": "/", "xds.route.priority": "9"}),
    task_definition("canary", 4, {"xds.service": "canary", "xds.route.hosts": "c.test", "xds.route.newest-revision-weight": "20"}),
    task_definition("canary", 5, {"xds.service": "canary", "xds.route.hosts": "c.test", "xds.route.newest-revision-weight": "20"}),
    # New revisions that change settings but no decision at the edge (the builder assembles only
    # them again): orders:3 is orders:1 with another retry policy (grabber's refusal names it),
    # catch:2 is catch:1 with another timeout (it shadows grabber), users:4 is users:3 with other retries.
    task_definition("orders", 3, {"xds.service": "orders", "xds.route.prefix": "/orders/", "xds.upstreams": "users,ghost", "xds.retry.attempts": "4"}),
    task_definition("catch", 2, {"xds.service": "catch", "xds.route.prefix": "/", "xds.route.priority": "9", "xds.timeout.route": "3s"}),
    task_definition("users", 4, {"xds.service": "users", "xds.route.weights": "users:90,users-next:10", "xds.retry.attempts": "3"}),
    task_definition("broken", 1, {"xds.service": "broken", "xds.route.priority": "high"}),
)
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")  # few: tasks share addresses
CLUSTERS = ("prod", "edge")


def make_task(td: int, number: int, address: int, started: int, health: str, status: str, cluster: str) -> Task:
    return task(
        POOL[td], f"t{number}", ADDRESSES[address], started_at=float(started) if started else None,
        container_health=health, last_status=status, desired_status="STOPPED" if status == "DEACTIVATING" else "RUNNING", cluster=cluster,
    )


tasks_strategy = st.builds(
    make_task,
    td=st.integers(0, len(POOL) - 1),
    number=st.integers(0, 11),
    address=st.integers(0, len(ADDRESSES) - 1),
    started=st.integers(0, 4),
    health=st.sampled_from(["HEALTHY", "UNHEALTHY", "UNKNOWN"]),
    status=st.sampled_from(["RUNNING", "RUNNING", "RUNNING", "DEACTIVATING", "PENDING"]),
    cluster=st.sampled_from(CLUSTERS),
)


def views(tasks: dict[str, Task], previous: dict[str, ClusterState], hide_definition: bool, logs: dict[str, ChangeLog] | None = None) -> dict[str, ClusterState]:
    """A view per cluster; a cluster whose tasks did not change keeps its ClusterState and Task
    objects, as discovery does. With `logs`, each view carries its cluster's change log, as a task
    table's do (a view that lacks a task definition goes without: a table's tasks always have theirs)."""
    result = {}
    for cluster in CLUSTERS:
        mine = sorted((t for t in tasks.values() if t.cluster == cluster), key=lambda t: t.arn)
        old = previous.get(cluster)
        if old is not None and len(old.tasks) == len(mine) and all(a is b for a, b in zip(old.tasks, mine)) and not hide_definition:
            result[cluster] = old
            continue
        definitions = list(POOL[:-1] if hide_definition else POOL)  # discovery may lack one for a while
        state = cluster_state(mine, definitions, cluster)
        if logs is not None and not hide_definition:
            log = logs.setdefault(cluster, ChangeLog(keep=3))  # small: some views fall back to comparing
            before = {t.arn: t for t in old.tasks} if old is not None else {}
            for arn in sorted({t.arn for t in mine} | set(before)):
                if before.get(arn) is not next((t for t in mine if t.arn == arn), None):
                    log.record(arn)
            state = dataclasses.replace(state, changes=log, position=log.position)
        result[cluster] = state
    return result


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[list[Task], list[str], bool]]:
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        steps.append((draw(st.lists(tasks_strategy, max_size=4)), draw(st.lists(st.integers(0, 11).map(lambda n: f"t{n}"), max_size=3)), draw(st.booleans())))
    return steps


def counts(mesh: Mesh) -> dict[EndpointHealth, int]:
    found = dict.fromkeys(EndpointHealth, 0)
    for service in mesh.services:
        for endpoint in service.endpoints:
            found[endpoint.health] += 1
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.booleans())
def test_after_any_sequence_of_views_the_builder_holds_what_build_mesh_builds(history: list[tuple[list[Task], list[str], bool]], logged: bool) -> None:
    builder = MeshBuilder()
    logs: dict[str, ChangeLog] | None = {} if logged else None
    live: dict[str, Task] = {}
    states: dict[str, ClusterState] = {}
    previous: Mesh | None = None
    for upserts, removals, hide in history:
        for changed in upserts:
            live[changed.arn.rsplit("/", 1)[1]] = changed
        for gone in removals:
            live.pop(gone, None)
        states = views(live, states, hide, logs)
        update = builder.update(states.values())
        fresh = build_mesh(states.values())
        assert update.mesh == fresh
        assert update.mesh.virtual_hosts == fresh.virtual_hosts
        if previous is not None:
            assert update.delta == mesh_delta(previous, fresh)
            # Unchanged services are the previous objects; the delta names every other one.
            before = {s.name: s for s in previous.services}
            for service in update.mesh.services:
                if service.name not in update.delta.services:
                    assert service is before[service.name]
        assert builder.endpoints_by_health() == counts(fresh)
        previous = update.mesh


def test_an_endpoint_change_replaces_one_endpoint_set_and_keeps_everything_else() -> None:
    orders, users = POOL[0], POOL[4]
    tasks = [task(orders, "o1", "127.0.0.1", started_at=1.0), task(orders, "o2", "127.0.0.2", started_at=2.0), task(users, "u1", "127.0.0.3", started_at=1.0)]
    builder = MeshBuilder()
    first = builder.update([cluster_state(tasks, [orders, users])]).mesh
    tasks[1] = dataclasses.replace(tasks[1], container_health={"app": "UNHEALTHY"})
    update = builder.update([cluster_state(tasks, [orders, users])])
    assert update.delta.endpoints == {"orders"} and update.delta.endpoints_only
    assert update.mesh.service("users") is first.service("users")
    assert update.mesh.problems is first.problems and update.mesh.virtual_hosts is first.virtual_hosts
    assert [e.health for e in update.mesh.service("orders").endpoints] == [EndpointHealth.HEALTHY, EndpointHealth.UNHEALTHY]  # type: ignore[union-attr]
    assert update.mesh == build_mesh([cluster_state(tasks, [orders, users])])


def test_the_oldest_task_leaving_moves_nothing_when_the_order_stays() -> None:
    orders, users = POOL[0], POOL[4]
    tasks = [task(orders, "o1", "127.0.0.1", started_at=1.0), task(orders, "o2", "127.0.0.2", started_at=3.0), task(users, "u1", "127.0.0.3", started_at=9.0)]
    builder = MeshBuilder()
    builder.update([cluster_state(tasks, [orders, users])])
    update = builder.update([cluster_state(tasks[1:], [orders, users])])
    assert update.delta.endpoints == {"orders"} and update.delta.endpoints_only


def test_labels_are_parsed_once_per_task_definition_arn() -> None:
    labels = TaskDefinitionLabels(partial(parse_task_definition, prefix="xds."))
    builder = MeshBuilder(labels=labels)
    orders = POOL[0]
    tasks = [task(orders, f"o{i}", f"127.0.1.{i}") for i in range(1, 20)]
    for count in range(1, 20):
        builder.update([cluster_state(tasks[:count], [orders])])
    builder.update([cluster_state([], [orders])])
    builder.update([cluster_state(tasks, [orders])])
    assert labels.parses == 1 and len(labels) == 1 and labels.size_bytes() > 0


def test_the_label_cache_is_bounded_in_bytes() -> None:
    labels = TaskDefinitionLabels(partial(parse_task_definition, prefix="xds."), max_bytes=20_000)
    for revision in range(1, 200):
        labels.get(task_definition("orders", revision, {"xds.service": "orders"}))
    assert labels.size_bytes() <= 20_000 and 1 <= len(labels) < 199


def test_a_view_with_a_change_log_is_applied_from_the_tasks_it_names() -> None:
    """The log is trusted: a task it does not name is not looked at (its old state stays)."""
    orders = POOL[0]
    log = ChangeLog()
    one, two = task(orders, "o1", "127.0.0.1"), task(orders, "o2", "127.0.0.2")
    builder = MeshBuilder()
    builder.update([dataclasses.replace(cluster_state([one], [orders]), changes=log, position=log.position)])
    log.record(two.arn)
    moved = dataclasses.replace(one, container_health={"app": "UNHEALTHY"})  # not in the log
    update = builder.update([dataclasses.replace(cluster_state([moved, two], [orders]), changes=log, position=log.position)])
    assert [(e.address, e.health) for e in update.mesh.service("orders").endpoints] == [  # type: ignore[union-attr]
        ("127.0.0.1", EndpointHealth.HEALTHY), ("127.0.0.2", EndpointHealth.HEALTHY)
    ]


def test_a_change_log_forgets_beyond_its_bound() -> None:
    log = ChangeLog(keep=2)
    start = log.position
    for arn in ("a", "b", "c", "d", "e"):
        log.record(arn)
    assert log.between(start, log.position) is None  # forgotten: the reader compares every task
    assert log.between(log.position - 2, log.position - 1) == {"d"} and log.between(log.position, log.position) == frozenset()
    assert log.between(log.position, log.position - 1) is None


def test_a_retry_label_change_assembles_only_that_service_and_rewrites_the_problems_naming_it(monkeypatch: object) -> None:
    """orders:1 -> orders:3 (another retry policy, the same route): grabber, refused because orders
    holds /orders/, is refused still, and its problem names orders:3; nothing else is assembled."""
    from controlplane.model import incremental

    orders, grabber, users = POOL[0], POOL[6], POOL[4]
    orders3 = next(td for td in POOL if td.display_name == "orders:3")
    tasks = [task(orders, "o1", "127.0.0.1", started_at=1.0), task(grabber, "g1", "127.0.0.2", started_at=2.0), task(users, "u1", "127.0.0.3", started_at=3.0)]
    builder = MeshBuilder()
    first = builder.update([cluster_state(tasks, [orders, grabber, users])]).mesh
    assert any("orders:1" in p.message and p.service == "grabber" for p in first.problems)
    assembled: list[int] = []
    real = incremental.assemble
    monkeypatch.setattr(incremental, "assemble", lambda *a, **k: assembled.append(1) or real(*a, **k))  # type: ignore[attr-defined]
    tasks[0] = dataclasses.replace(tasks[0], task_definition_arn=orders3.arn)
    update = builder.update([cluster_state(tasks, [orders3, grabber, users])])
    assert not assembled and not update.assembled
    assert update.delta.settings == {"orders"} and update.delta.problems
    assert update.mesh.service("users") is first.service("users") and update.mesh.virtual_hosts is first.virtual_hosts
    assert update.mesh.service("orders").policy.retry.num_retries == 4  # type: ignore[union-attr]
    grabber_problems = [p.message for p in update.mesh.problems if p.service == "grabber"]
    assert grabber_problems and all("orders:3" in m and "orders:1" not in m for m in grabber_problems)
    assert update.mesh == build_mesh([cluster_state(tasks, [orders3, grabber, users])])
    assert update.mesh.problems == build_mesh([cluster_state(tasks, [orders3, grabber, users])]).problems
