"""The edge's route configuration, put together from virtual hosts and routes kept serialized, is
byte for byte the configuration serialized whole; the clusters it names are those it routes to;
and a change of one service builds again only the virtual hosts that hold it."""

from __future__ import annotations

import dataclasses

from envoy.config.route.v3 import route_components_pb2 as rc

from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.edge_routes import edge_routes
from controlplane.translate.route import referenced_clusters, route_configuration, service_route

from .builders import cluster_state, task, task_definition
from .test_incremental_model import POOL

MIRRORED = task_definition(
    "shop", 1, {"xds.service": "shop", "xds.route.hosts": "shop.test,*.test", "xds.route.prefix": "/shop/", "xds.mirror.service": "users"}
)


def mesh_of(definitions: list) -> Mesh:
    tasks = [task(td, f"t{n}", f"127.0.0.{n + 1}", started_at=float(n + 1)) for n, td in enumerate(definitions)]
    return build_mesh([cluster_state(tasks, definitions)])


def serialized_whole(mesh: Mesh) -> bytes:
    """The configuration as one message, serialized whole (what edge_routes replaces)."""
    hosts = [
        rc.VirtualHost(name=v.host.replace("*", "_any_"), domains=[v.host], routes=[service_route(mesh.by_name[s]) for s in v.routes])
        for v in mesh.virtual_hosts
    ]
    return route_configuration("edge", hosts).SerializeToString(deterministic=True)


def test_the_configuration_put_together_is_the_configuration_serialized_whole() -> None:
    definitions = [POOL[0], POOL[4], POOL[5], POOL[7], POOL[8], MIRRORED]
    mesh = mesh_of(definitions)
    assert len(mesh.virtual_hosts) >= 3 and any(len(v.routes) > 1 for v in mesh.virtual_hosts)
    routes = edge_routes(mesh, "edge", TranslationMemo())
    assert routes.config.SerializeToString(deterministic=True) == serialized_whole(mesh)
    assert routes.clusters == referenced_clusters(routes.config)
    assert {"users", "users-next", "shop"} <= routes.clusters  # weights and mirror targets included


def test_a_change_of_one_service_builds_only_the_virtual_hosts_that_hold_it_again() -> None:
    memo = TranslationMemo()
    definitions = [POOL[0], POOL[8], MIRRORED]
    mesh = mesh_of(definitions)
    first = edge_routes(mesh, "edge", memo)
    assert edge_routes(mesh, "edge", memo) is first  # nothing changed: the very configuration
    retried = dataclasses.replace(MIRRORED, arn=MIRRORED.arn.replace(":1", ":2"), revision=2)
    container = dataclasses.replace(retried.containers[0], labels={**retried.containers[0].labels, "xds.retry.attempts": "5"})
    changed = mesh_of([POOL[0], POOL[8], dataclasses.replace(retried, containers=(container,))])
    built: list[str] = []
    original = memo.get_for

    def watching(kind: str, name: object, key: object, build: object) -> object:
        def wrapped() -> object:
            built.append(f"{kind}:{name}")
            return build()  # type: ignore[operator]

        return original(kind, name, key, wrapped)  # type: ignore[arg-type]

    memo.get_for = watching  # type: ignore[method-assign]
    second = edge_routes(changed, "edge", memo)
    assert second.config.SerializeToString(deterministic=True) == serialized_whole(changed)
    # shop is in shop.test and *.test (and copied into no other host): those two and its route are built again.
    assert sorted(b for b in built if b.startswith("virtual-host")) == ["virtual-host/edge:*.test", "virtual-host/edge:shop.test"]
    assert "route-wire/edge:orders" not in built and "route-wire/edge:shop" in built
