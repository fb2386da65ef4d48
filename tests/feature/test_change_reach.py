"""What one change reaches, through the real pipeline: an endpoint change sends EDS only to the
streams that subscribe to that cluster, and only the changed ClusterLoadAssignment; an unrelated
role's snapshot is neither rebuilt nor its stream woken."""

from __future__ import annotations

from controlplane.proxy.roles import role_from_metadata
from unit.builders import task_definition

from .harness import EDGE, EDS, serving
from .test_roles_over_ads import run, view

ORDERS = task_definition("orders", 1, {"xds.service": "orders", "xds.route.prefix": "/orders.Orders/"})
USERS = task_definition("users", 1, {"xds.service": "users", "xds.route.prefix": "/users.Users/"})
SHOP = task_definition("shop", 1, {"xds.service": "shop", "xds.route.prefix": "/shop.Shop/", "xds.upstreams": "orders"}, ports=(8080,))
ADMIN = task_definition("admin", 1, {"xds.service": "admin", "xds.route.prefix": "/admin.Admin/", "xds.upstreams": "users"}, ports=(8080,))


def fleet(*orders: str) -> object:
    return view(
        *((ORDERS, f"orders-{i}", address) for i, address in enumerate(orders)),
        (USERS, "users-1", "127.0.2.1"), (USERS, "users-2", "127.0.2.2"),
        (SHOP, "shop-1", "127.0.3.1"), (ADMIN, "admin-1", "127.0.4.1"),
    )


@run
async def test_an_endpoint_change_reaches_only_the_streams_that_use_that_cluster() -> None:
    async with serving() as pipeline:
        pipeline.publish(fleet("127.0.1.1", "127.0.1.2"))  # type: ignore[arg-type]
        shop_role, admin_role = {"role": "sidecar", "service": "shop"}, {"role": "sidecar", "service": "admin"}
        async with pipeline.proxy("edge-1", EDGE) as edge, pipeline.proxy("shop-1", shop_role) as shop, pipeline.proxy("admin-1", admin_role) as admin:
            for proxy in (edge, shop, admin):
                await proxy.synced()
            assert shop.names()["EDS"] == ["orders"] and admin.names()["EDS"] == ["users"]
            assert edge.names()["EDS"] == ["admin", "orders", "shop", "users"]
            admin_snapshot = pipeline.cache.snapshot(role_from_metadata("admin-1", admin_role))
            builds = pipeline.cache.builds
            seen = {proxy.node_id: len(proxy.responses) for proxy in (edge, shop, admin)}

            pipeline.publish(fleet("127.0.1.1", "127.0.1.3"))  # type: ignore[arg-type]  # one task of orders replaced

            await edge.until(lambda p: ("127.0.1.3", 50051, "HEALTHY") in p.endpoints("orders"))
            await shop.until(lambda p: ("127.0.1.3", 50051, "HEALTHY") in p.endpoints("orders"))
            for proxy in (edge, shop, admin):
                await proxy.quiet()
            # The edge and the sidecar that calls orders get one EDS response each, carrying the one
            # ClusterLoadAssignment that changed; the sidecar that calls only users gets nothing.
            assert edge.responses[seen["edge-1"]:] == [(EDS, ["orders"])]
            assert shop.responses[seen["shop-1"]:] == [(EDS, ["orders"])]
            assert admin.responses[seen["admin-1"]:] == []
            # No role was translated again, and the unrelated one kept its very snapshot.
            assert pipeline.cache.builds == builds
            assert pipeline.cache.snapshot(role_from_metadata("admin-1", admin_role)) is admin_snapshot
            # What the proxies hold is complete: the edge still has every other cluster's endpoints.
            assert edge.endpoints("orders") == [("127.0.1.1", 50051, "HEALTHY"), ("127.0.1.3", 50051, "HEALTHY")]
            assert edge.endpoints("users") == [("127.0.2.1", 50051, "HEALTHY"), ("127.0.2.2", 50051, "HEALTHY")]
