"""Dependency-tracked snapshots: after any sequence of views the cache's snapshots, kept up to date
change by change, equal snapshots built from scratch; a change rebuilds only the roles that depend
on what changed; the caches' own sizes stay flat over 1,000 changes."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from hypothesis import HealthCheck, given, settings

from controlplane.admin.metrics import Metrics
from controlplane.cache.snapshot import build_snapshot
from controlplane.cache.store import SnapshotCache
from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.model.incremental import MeshBuilder
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole
from controlplane.translate import translate
from controlplane.xds.types import ORDER, TypeUrl

from .builders import cluster_state, task, task_definition
from .test_incremental_model import histories, views
from .xds import Proxy

ROLES: tuple[ProxyRole, ...] = (
    EdgeRole("127.0.0.1", 10000),
    SidecarRole(service="orders", inbound_address="127.0.0.1", inbound_port=15000, app_port=8080),
    SidecarRole(service="users"),
    SidecarRole(service="canary"),
    SidecarRole(service="ghost"),  # declared by nothing (yet)
    GrpcClientRole(service="orders"),  # declares upstreams
    GrpcClientRole(service="catch"),  # declares none: sees every service
)


def contents(snapshot: object) -> dict[TypeUrl, dict[str, str]]:
    return {t: {name: r.version for name, r in snapshot.of(t).items()} for t in ORDER}  # type: ignore[attr-defined]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_snapshots_kept_up_to_date_equal_snapshots_built_from_scratch(history: list[tuple[list[Task], list[str], bool]]) -> None:
    builder, cache = MeshBuilder(), SnapshotCache()
    for role in ROLES:
        cache.acquire(role, lambda: None)
    live: dict[str, Task] = {}
    states: dict[str, ClusterState] = {}
    for upserts, removals, hide in history:
        for changed in upserts:
            live[changed.arn.rsplit("/", 1)[1]] = changed
        for gone in removals:
            live.pop(gone, None)
        states = views(live, states, hide)
        update = builder.update(states.values())
        cache.set_mesh(update.mesh, update.delta)
        for role in ROLES:
            kept = cache.snapshot(role)
            assert contents(kept) == contents(build_snapshot(translate(update.mesh, role))), role.key


ORDERS = task_definition("orders", 1, {"xds.service": "orders", "xds.route.prefix": "/orders/", "xds.upstreams": "users"})
USERS = task_definition("users", 1, {"xds.service": "users", "xds.route.prefix": "/users/"})
BILLING = task_definition("billing", 1, {"xds.service": "billing", "xds.route.prefix": "/billing/", "xds.upstreams": "ledger"})
LEDGER = task_definition("ledger", 1, {"xds.service": "ledger", "xds.route.prefix": "/ledger/"})
DEFINITIONS = [ORDERS, USERS, BILLING, LEDGER]


def fleet(generation: int = 0) -> list[Task]:
    """Two tasks per service; the second task of `users` moves with the generation."""
    tasks = []
    for i, td in enumerate(DEFINITIONS):
        for k in range(2):
            moving = td is USERS and k == 1
            # Addresses of one length: a message's size does not drift with the generation.
            address = f"127.9.{100 + generation // 100 % 100}.{100 + generation % 100}" if moving else f"127.0.{i}.{k + 1}"
            tasks.append(task(td, f"{td.family}-{k}-{generation if moving else 0:04d}", address, started_at=float(k + 1)))
    return tasks


def test_an_endpoint_change_rebuilds_no_role_and_leaves_unrelated_snapshots_alone() -> None:
    builder, cache = MeshBuilder(), SnapshotCache()
    edge, orders, billing = EdgeRole("127.0.0.1", 10000), SidecarRole(service="orders"), SidecarRole(service="billing")
    woken: list[str] = []
    for role in (edge, orders, billing):
        cache.acquire(role, lambda key=role.key: woken.append(key))
    update = builder.update([cluster_state(fleet(), DEFINITIONS)])
    cache.set_mesh(update.mesh, update.delta)
    before = {role: cache.snapshot(role) for role in (edge, orders, billing)}
    builds = cache.builds
    woken.clear()

    update = builder.update([cluster_state(fleet(1), DEFINITIONS)])
    assert update.delta.endpoints == {"users"} and update.delta.endpoints_only
    cache.set_mesh(update.mesh, update.delta)

    assert cache.builds == builds  # nothing translated in full: the endpoint sets were replaced
    assert cache.snapshot(billing) is before[billing]  # billing calls ledger only: untouched, not woken
    assert sorted(woken) == sorted([edge.key, orders.key])
    for role in (edge, orders):
        after = cache.snapshot(role)
        assert after is not None and after is not before[role]
        # Only the users ClusterLoadAssignment differs; every other mapping is the very same object.
        for type_url in ORDER:
            if type_url is not TypeUrl.ENDPOINT:
                assert after.of(type_url) is before[role].of(type_url)  # type: ignore[union-attr]
        changed = {n for n, r in after.of(TypeUrl.ENDPOINT).items() if before[role].of(TypeUrl.ENDPOINT)[n] is not r}  # type: ignore[union-attr]
        assert changed == {"users"}


def test_a_settings_change_rebuilds_only_the_roles_that_depend_on_the_service() -> None:
    builder, cache = MeshBuilder(), SnapshotCache()
    edge, orders, billing = EdgeRole("127.0.0.1", 10000), SidecarRole(service="orders"), SidecarRole(service="billing")
    for role in (edge, orders, billing):
        cache.acquire(role, lambda: None)
    update = builder.update([cluster_state(fleet(), DEFINITIONS)])
    cache.set_mesh(update.mesh, update.delta)
    kept = {role: cache.snapshot(role) for role in (edge, orders, billing)}
    builds, patches = cache.builds, cache.patches

    # users:2 with a retry policy replaces users:1 (a rolling deploy done).
    users2 = task_definition("users", 2, {"xds.service": "users", "xds.route.prefix": "/users/", "xds.retry.attempts": "5"})
    tasks = [t if t.task_definition_arn != USERS.arn else dataclasses.replace(t, task_definition_arn=users2.arn) for t in fleet()]
    update = builder.update([cluster_state(tasks, [ORDERS, users2, BILLING, LEDGER])])
    assert update.delta.settings == {"users"}
    cache.set_mesh(update.mesh, update.delta)

    assert cache.builds == builds + 1  # the sidecar of orders, which calls users
    assert cache.snapshot(billing) is kept[billing]
    assert cache.snapshot(orders) is not kept[orders]
    # The edge depends on every service, but replaces just what the change reaches: the route
    # configuration (a retry policy) and users' endpoints (they name users:2 in their metadata);
    # its listeners and clusters are the very mappings it had.
    assert cache.patches == patches + 1
    patched = cache.snapshot(edge)
    assert patched is not None and patched is not kept[edge]
    assert patched.of(TypeUrl.LISTENER) is kept[edge].of(TypeUrl.LISTENER)
    assert patched.of(TypeUrl.CLUSTER) is kept[edge].of(TypeUrl.CLUSTER)
    assert set(patched.patched) == {TypeUrl.ENDPOINT, TypeUrl.ROUTE}
    assert patched.patched[TypeUrl.ENDPOINT][1] == {"users"}
    scratch = build_snapshot(translate(update.mesh, edge))
    assert patched.resources == scratch.resources


def test_a_change_to_a_canary_target_reaches_a_grpc_client_that_calls_the_split_service() -> None:
    """The client declares it calls `shop` only; shop splits to `shop-next`, so shop-next's
    endpoints and settings reach the client too."""
    shop = task_definition("shop", 1, {"xds.service": "shop", "xds.route.weights": "shop:90,shop-next:10"})
    nxt = task_definition("shop-next", 1, {"xds.service": "shop-next", "xds.route.enabled": "false"})
    app = task_definition("app", 1, {"xds.service": "app", "xds.route.prefix": "/app/", "xds.upstreams": "shop"})
    definitions = [shop, nxt, app]
    builder, cache, client = MeshBuilder(), SnapshotCache(), GrpcClientRole(service="app")
    woken: list[str] = []
    cache.acquire(client, lambda: woken.append("client"))

    def state(next_address: str, next_definition: object = nxt) -> ClusterState:
        tasks = [task(shop, "shop-0", "127.0.1.1"), task(app, "app-0", "127.0.3.1"), task(next_definition, "next-0", next_address)]  # type: ignore[arg-type]
        return cluster_state(tasks, [*definitions, next_definition])  # type: ignore[list-item]

    update = builder.update([state("127.0.2.1")])
    cache.set_mesh(update.mesh, update.delta)
    assert "shop-next" in cache.snapshot(client).of(TypeUrl.CLUSTER)  # type: ignore[union-attr]
    woken.clear()

    update = builder.update([state("127.0.2.2")])  # the canary's task moved
    cache.set_mesh(update.mesh, update.delta)
    assert woken == ["client"]
    assignment = ClusterLoadAssignment()
    cache.snapshot(client).of(TypeUrl.ENDPOINT)["shop-next"].packed.Unpack(assignment)  # type: ignore[union-attr]
    assert assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address == "127.0.2.2"

    # A setting of the canary (its max requests) reaches it too.
    nxt2 = task_definition("shop-next", 2, {"xds.service": "shop-next", "xds.route.enabled": "false", "xds.circuit-breaker.max-requests": "9"})
    update = builder.update([state("127.0.2.2", nxt2)])
    cache.set_mesh(update.mesh, update.delta)
    assert contents(cache.snapshot(client)) == contents(build_snapshot(translate(update.mesh, client)))
    cluster = Cluster()
    cache.snapshot(client).of(TypeUrl.CLUSTER)["shop-next"].packed.Unpack(cluster)  # type: ignore[union-attr]
    assert cluster.circuit_breakers.thresholds[0].max_requests.value == 9


# The caches' own size metrics, as /metrics shows them.
CACHE_METRICS = (
    "controlplane_label_cache_bytes",
    "controlplane_label_cache_task_definitions",
    "controlplane_translation_cache_bytes",
    "controlplane_cache_interned_bytes",
    "controlplane_cache_interned_resources",
    "controlplane_cache_snapshots",
)


def test_what_the_caches_hold_stays_flat_over_1000_changes() -> None:
    """By the caches' own size metrics (label cache, translation memo, interner, snapshots): after
    the first 10 changes, none of them grows over 1,000 endpoint and label changes."""
    builder, cache, metrics = MeshBuilder(), SnapshotCache(), Metrics()
    metrics.track_cache(cache)
    metrics.track_translation_cache(cache.memo.size_bytes)
    metrics.track_label_cache(builder.labels)
    roles = [EdgeRole("127.0.0.1", 10000), SidecarRole(service="orders"), SidecarRole(service="billing"), GrpcClientRole(service="orders")]
    for role in roles:
        cache.acquire(role, lambda: None)
        cache.snapshot(role)
    users2 = task_definition("users", 2, {"xds.service": "users", "xds.route.prefix": "/users/", "xds.retry.attempts": "5"})
    sizes: list[dict[str, float]] = []
    for change in range(1000):
        tasks = fleet(change)
        if change % 10 == 5:  # now and then a label change too: a new revision of users
            tasks = [t if t.task_definition_arn != USERS.arn else dataclasses.replace(t, task_definition_arn=users2.arn) for t in tasks]
        update = builder.update([cluster_state(tasks, [*DEFINITIONS, users2])])
        cache.set_mesh(update.mesh, update.delta)
        for role in roles:
            cache.snapshot(role)
        sizes.append({name: metrics.registry.get_sample_value(name) or 0.0 for name in CACHE_METRICS})
    first, rest = sizes[:10], sizes[10:]
    for name in CACHE_METRICS:
        assert max(s[name] for s in rest) <= max(s[name] for s in first), (name, [s[name] for s in first], max(s[name] for s in rest))
        assert sizes[-1][name] > 0, name


@pytest.mark.parametrize("protocol", ["sotw", "delta"])
def test_a_stream_fed_patched_snapshots_ends_up_holding_every_current_endpoint_set(protocol: str) -> None:
    """Streams look only at the resources a patched snapshot names when they saw the one before;
    one that missed a snapshot (or whose own state moved) compares everything. Either way, with
    ACKs or without, it ends up holding exactly the current ClusterLoadAssignments."""
    builder, cache = MeshBuilder(), SnapshotCache()
    edge = EdgeRole("127.0.0.1", 10000)
    cache.acquire(edge, lambda: None)
    tasks = fleet()
    update = builder.update([cluster_state(tasks, DEFINITIONS)])
    cache.set_mesh(update.mesh, update.delta)
    proxy = Proxy(protocol)
    snapshot = cache.snapshot(edge)
    assert snapshot is not None
    proxy.handshake(snapshot)
    late: list[object] = []
    for change in range(40):
        moving = change % len(tasks)
        tasks[moving] = dataclasses.replace(tasks[moving], container_health={"app": "UNHEALTHY" if change % 3 else "HEALTHY"})
        update = builder.update([cluster_state(tasks, DEFINITIONS)])
        cache.set_mesh(update.mesh, update.delta)
        if change % 5 == 4:
            continue  # this stream misses a snapshot
        replies = proxy.push(cache.snapshot(edge))
        for reply in late:
            proxy.ack(reply)  # ACKs that come in after the next push
        late = []
        for reply in replies:
            if change % 2:
                late.append(reply)
            else:
                proxy.ack(reply)
    for reply in [*late, *proxy.push(cache.snapshot(edge))]:  # the last change was one this stream missed
        proxy.ack(reply)
    current = cache.snapshot(edge)
    assert current is not None
    wanted = {name: r.version for name, r in current.of(TypeUrl.ENDPOINT).items()}
    assert {name: r.version for name, r in proxy.stream.subscription(TypeUrl.ENDPOINT).held.items()} == wanted
    assert proxy.running[TypeUrl.ENDPOINT] == {
        name: ClusterLoadAssignment.FromString(r.packed.value) for name, r in current.of(TypeUrl.ENDPOINT).items()
    }


def test_a_label_change_of_one_sni_service_reaches_its_port_s_listener_and_only_the_roles_that_call_it() -> None:
    """TCP services sharing a port by SNI have one listener: a new revision of one of them rebuilds
    that listener at the edge and in the sidecars calling it; a sidecar calling only the other keeps its snapshot."""
    def tcp(name: str, revision: int, **labels: str) -> TaskDefinition:
        return task_definition(name, revision, {"xds.service": name, "xds.protocol": "tcp", "xds.route.port": "15443",
                                                "xds.route.hosts": f"{name}.test", **labels})

    a, b = tcp("a", 1), tcp("b", 1)
    calls_a = task_definition("calls-a", 1, {"xds.service": "calls-a", "xds.route.prefix": "/a/", "xds.upstreams": "a"})
    calls_b = task_definition("calls-b", 1, {"xds.service": "calls-b", "xds.route.prefix": "/b/", "xds.upstreams": "b"})
    definitions = [a, b, calls_a, calls_b]
    tasks = [task(td, f"{td.family}-0", f"127.0.{i}.1", started_at=float(i)) for i, td in enumerate(definitions, start=1)]
    builder, cache = MeshBuilder(), SnapshotCache()
    edge, sidecar_a, sidecar_b = EdgeRole("127.0.0.1", 10000), SidecarRole(service="calls-a"), SidecarRole(service="calls-b")
    for role in (edge, sidecar_a, sidecar_b):
        cache.acquire(role, lambda: None)
    update = builder.update([cluster_state(tasks, definitions)])
    cache.set_mesh(update.mesh, update.delta)
    kept = {role: cache.snapshot(role) for role in (edge, sidecar_a, sidecar_b)}

    b2 = tcp("b", 2, **{"xds.timeout.idle": "5m"})
    moved = [t if t.task_definition_arn != b.arn else dataclasses.replace(t, task_definition_arn=b2.arn) for t in tasks]
    update = builder.update([cluster_state(moved, [a, b2, calls_a, calls_b])])
    assert update.delta.settings == {"b"}
    cache.set_mesh(update.mesh, update.delta)

    assert cache.snapshot(sidecar_a) is kept[sidecar_a]
    for role in (edge, sidecar_b):
        snapshot = cache.snapshot(role)
        assert snapshot is not None and snapshot is not kept[role]
        before, after = kept[role].of(TypeUrl.LISTENER)["tcp/port/15443"], snapshot.of(TypeUrl.LISTENER)["tcp/port/15443"]  # type: ignore[union-attr]
        assert after.version != before.version
        assert snapshot.resources == build_snapshot(translate(update.mesh, role)).resources
