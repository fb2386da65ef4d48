"""The edge role: every service's Cluster and ClusterLoadAssignment, one HTTP listener and its route
configuration, and a listener per TCP service (tcp.py)."""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from google.protobuf.message import Message

from controlplane.translate import cluster, endpoint, jwt, listener, secret, tcp
from controlplane.translate.edge_routes import edge_routes
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.patch import patched_or_kept
from controlplane.translate.resources import Resources
from controlplane.xds.types import TypeUrl

EDGE_ROUTES = "edge"


def edge_resources(mesh: Mesh, role: EdgeRole, memo: TranslationMemo, options: EdgeOptions = EdgeOptions()) -> Resources:
    routes = edge_routes(mesh, EDGE_ROUTES, memo)
    # With TLS the listener's filter chains follow the hosts services declare (SNI), so it is keyed on them.
    hosts = tuple(sorted({h for s in mesh.services for h in s.route.hosts})) if options.tls_enabled else ()
    # The JWT providers are the listener's too (jwt.py): it is keyed on them.
    guarded = jwt.guarded(mesh)
    by_type: dict[TypeUrl, dict[str, Message]] = {
        TypeUrl.CLUSTER: {
            s.name: cluster.memoised_service_cluster(memo, s, local_fleet=role.local_service is not None) for s in mesh.services
        }
        | jwt.jwks_clusters(guarded),
        TypeUrl.ENDPOINT: {s.name: endpoint.memoised_service_load_assignment(memo, s) for s in mesh.services},
        TypeUrl.LISTENER: {
            listener.EDGE_LISTENER: memo.get(
                "listener/edge", (role, options, hosts, guarded),
                lambda: patched_or_kept(listener.edge_listener(role, EDGE_ROUTES, mesh, options), options.listener_patch),
            ),
            **tcp.edge_listeners(mesh, role, options, memo),
        },
        TypeUrl.ROUTE: {EDGE_ROUTES: routes.config},
    }
    if options.tls_enabled:
        by_type[TypeUrl.SECRET] = dict(secret.edge_secrets(options.certificates))
    return Resources(by_type=by_type, references={EDGE_ROUTES: routes.clusters})


def edge_settings_changes(old: Mesh, mesh: Mesh, names: Iterable[str], role: EdgeRole, memo: TranslationMemo) -> Resources | None:
    """What edge_resources holds for the services `names` (in both meshes, settings changed) and the
    route configuration, built without the rest: enough when the change leaves the listeners as
    they were (no JWT, TCP or host change; the hosts key the TLS listener). None: translate in full."""
    clusters: dict[str, Message] = {}
    assignments: dict[str, Message] = {}
    for name in names:
        was, now = old.by_name.get(name), mesh.by_name.get(name)
        if was is None or now is None or was.policy.jwt is not None or now.policy.jwt is not None:
            return None
        if not (was.protocol.is_http and now.protocol.is_http) or was.route.hosts != now.route.hosts:
            return None
        clusters[name] = cluster.memoised_service_cluster(memo, now, local_fleet=role.local_service is not None)
        assignments[name] = endpoint.memoised_service_load_assignment(memo, now)
    routes = edge_routes(mesh, EDGE_ROUTES, memo)
    by_type: dict[TypeUrl, dict[str, Message]] = {TypeUrl.CLUSTER: clusters, TypeUrl.ENDPOINT: assignments, TypeUrl.ROUTE: {EDGE_ROUTES: routes.config}}
    return Resources(by_type=by_type, references={EDGE_ROUTES: routes.clusters})
