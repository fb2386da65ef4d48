"""Envoy Routes and RouteConfigurations for every role.

The edge: one virtual host per host name, with the routes the model resolved for it, in its order
(model/routing.py: a host's own routes by priority and match, then the wildcard fallbacks). A
sidecar's outbound routes: its upstreams by name as authority, then by the path prefixes they
declare. A sidecar's inbound route: everything to its app. A proxyless gRPC client: one route per
target, with the policy gRPC applies."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from controlplane.model.mesh import LbPolicy, Service, Timeouts
from controlplane.translate.browser import CORS, GRPC_WEB, cors_policy, grpc_web_enabled
from controlplane.translate.cluster import LOCAL_APP
from controlplane.translate.durations import duration
from controlplane.translate.fault import FAULT, route_fault
from controlplane.translate.jwt import JWT_AUTHN, route_requirement
from controlplane.translate.matchers import header_matcher, query_matcher
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.patch import patched_or_kept
from controlplane.translate.rate_limit import LOCAL_RATELIMIT, route_rate_limit
from controlplane.translate.retry import grpc_retry_policy, retry_policy
from controlplane.translate.route_features import apply_header_edits, apply_rewrite, cookie_hash_policy, mirror_policy


def route_match(service: Service) -> rc.RouteMatch:
    match = rc.RouteMatch()
    if service.route.method:
        match.path = service.route.method
    else:
        match.prefix = service.route.path_prefix
    match.headers.extend(header_matcher(h) for h in service.route.headers)
    match.query_parameters.extend(query_matcher(q) for q in service.route.query)
    return match


def route_action(service: Service) -> rc.RouteAction:
    """Where the calls go (the service, or weighted services) and how: retries, timeouts, hashing."""
    policy = service.policy
    action = rc.RouteAction(
        retry_policy=retry_policy(policy.retry),
        # gRPC streams may be long-lived: no route timeout unless a label asks for one.
        timeout=duration(policy.timeouts.route_ms),
    )
    _send_to(action, service)
    if policy.load_balancing.hash_header:
        action.hash_policy.append(_header_hash(policy.load_balancing.hash_header))
    if policy.load_balancing.hash_cookie is not None:
        action.hash_policy.append(cookie_hash_policy(policy.load_balancing.hash_cookie))
    apply_rewrite(action, policy.rewrite)
    if policy.mirror is not None:
        action.request_mirror_policies.append(mirror_policy(policy.mirror))
    timeouts = policy.timeouts
    if timeouts.idle_ms is not None:
        action.idle_timeout.CopyFrom(duration(timeouts.idle_ms))
    limits = max_stream_duration(timeouts)
    if limits is not None:
        action.max_stream_duration.CopyFrom(limits)
    return action


def _send_to(action: rc.RouteAction, service: Service) -> None:
    """The service's cluster, or the clusters its calls are split between by weight."""
    if service.split is not None:
        action.weighted_clusters.CopyFrom(
            rc.WeightedCluster(
                clusters=[
                    rc.WeightedCluster.ClusterWeight(name=t.service, weight=wrappers_pb2.UInt32Value(value=t.weight))
                    for t in service.split.targets
                ]
            )
        )
    else:
        action.cluster = service.name


def _header_hash(header: str) -> rc.RouteAction.HashPolicy:
    return rc.RouteAction.HashPolicy(header=rc.RouteAction.HashPolicy.Header(header_name=header))


def max_stream_duration(timeouts: Timeouts) -> rc.RouteAction.MaxStreamDuration | None:
    """The call duration limits; Envoy and gRPC's xDS client (gRFC A31) read them alike."""
    if timeouts.max_stream_duration_ms is None and timeouts.grpc_timeout_header_max_ms is None:
        return None
    limits = rc.RouteAction.MaxStreamDuration()
    if timeouts.max_stream_duration_ms is not None:
        limits.max_stream_duration.CopyFrom(duration(timeouts.max_stream_duration_ms))
    if timeouts.grpc_timeout_header_max_ms is not None:
        # The client's deadline (grpc-timeout) becomes the route timeout, capped here (0 = no cap).
        limits.grpc_timeout_header_max.CopyFrom(duration(timeouts.grpc_timeout_header_max_ms))
    return limits


def service_route(service: Service, *, by_name: bool = False, patch: bool = True) -> rc.Route:
    """The route to a service with its policy and its `xds.patch.route` (patch.py) unless `patch` is
    False; `by_name` matches every path (the virtual host already chose the service by its name as
    authority) instead of the service's own match, except with a path rewrite: that replaces the
    route's prefix, so only paths under it are taken."""
    if not by_name:
        match = route_match(service)
    elif service.policy.rewrite.prefix is not None:
        match = rc.RouteMatch(path=service.route.method) if service.route.method else rc.RouteMatch(prefix=service.route.path_prefix)
    else:
        match = rc.RouteMatch(prefix="/")
    route = rc.Route(name=service.name, match=match, route=route_action(service))
    policy = service.policy
    apply_header_edits(route, policy.header_edits)
    rate_limit = route_rate_limit(service)
    if rate_limit is not None:
        route.typed_per_filter_config[LOCAL_RATELIMIT].CopyFrom(rate_limit)
    if policy.grpc_web:
        route.typed_per_filter_config[GRPC_WEB].CopyFrom(grpc_web_enabled())
    if policy.cors is not None:
        route.typed_per_filter_config[CORS].CopyFrom(cors_policy(policy.cors))
    if policy.fault is not None:
        route.typed_per_filter_config[FAULT].CopyFrom(route_fault(service.name, policy.fault))
    if policy.jwt is not None and not by_name:
        # Only the edge's chain has the jwt_authn filter; a sidecar sharing this route ignores it.
        route.typed_per_filter_config[JWT_AUTHN].CopyFrom(route_requirement(service))
    return patched_or_kept(route, policy.patches.route) if patch else route


def memoised_route(memo: TranslationMemo, service: Service, *, by_name: bool = False) -> rc.Route:
    """service_route, built once per service settings: an endpoint change does not rebuild it."""
    return memo.get_for("route/by-name" if by_name else "route", service.name, memo.settings_key(service), lambda: service_route(service, by_name=by_name))


def forward_route(cluster: str, prefix: str) -> rc.Route:
    """Everything under `prefix` to `cluster`, with the defaults of service_route: no timeout, no retries."""
    return rc.Route(match=rc.RouteMatch(prefix=prefix), route=rc.RouteAction(cluster=cluster, timeout=duration_pb2.Duration()))


def route_configuration(name: str, virtual_hosts: list[rc.VirtualHost]) -> route_pb2.RouteConfiguration:
    """Every RouteConfiguration we send. Clusters are not validated: a route may briefly name a
    cluster the proxy has not warmed yet (make-before-break), and Envoy would reject the whole set."""
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=virtual_hosts, validate_clusters=wrappers_pb2.BoolValue(value=False))


def edge_domains(host: str) -> list[str]:
    """The edge listener strips any port from Host/:authority before matching (strip_any_host_port),
    so `*.example.com` matches `a.example.com:8443` too; labels therefore name hosts without ports."""
    return [host]


def outbound_routes(name: str, upstreams: list[Service], memo: TranslationMemo) -> route_pb2.RouteConfiguration:
    """A sidecar's outbound routes: the app calls an upstream by its service name as authority
    (`grpc.default_authority`), or through the catch-all host by the path prefix the upstream declares."""
    virtual_hosts = [rc.VirtualHost(name=s.name, domains=[s.name], routes=[memoised_route(memo, s, by_name=True)]) for s in upstreams]
    by_prefix = sorted((s for s in upstreams if s.route.path_prefix != "/"), key=lambda s: (-len(s.route.path_prefix), s.name))
    catch_all = [memoised_route(memo, s) for s in by_prefix]
    if len(upstreams) == 1 and not by_prefix:
        catch_all.append(memoised_route(memo, upstreams[0], by_name=True))
    if catch_all:
        virtual_hosts.append(rc.VirtualHost(name="_any_", domains=["*"], routes=catch_all))
    return route_configuration(name, virtual_hosts)


def inbound_routes(name: str) -> route_pb2.RouteConfiguration:
    """A sidecar's inbound routes: every call to the app next to it."""
    return route_configuration(name, [rc.VirtualHost(name="local", domains=["*"], routes=[forward_route(LOCAL_APP, "/")])])


def grpc_client_routes(service: Service) -> route_pb2.RouteConfiguration:
    """What a proxyless gRPC client's `xds:///service` resolves to: every call to the service's
    cluster (or its weighted targets) with the part of its policy gRPC's xDS client applies:
    retries on gRPC statuses (gRFC A44), call duration limits (A31) and the ring-hash header (A42).
    The route matches every call: the client chose the service by its target name, and the
    service's match labels say which calls reach it through the edge."""
    policy = service.policy
    # RouteAction.timeout is ignored by gRPC; 0 keeps Envoy's reading of this route the same.
    action = rc.RouteAction(timeout=duration_pb2.Duration())
    _send_to(action, service)
    retry = grpc_retry_policy(policy.retry)
    if retry is not None:
        action.retry_policy.CopyFrom(retry)
    limits = max_stream_duration(policy.timeouts)
    if limits is not None:
        action.max_stream_duration.CopyFrom(limits)
    if policy.load_balancing.policy is LbPolicy.RING_HASH and policy.load_balancing.hash_header:
        action.hash_policy.append(_header_hash(policy.load_balancing.hash_header))
    route = rc.Route(match=rc.RouteMatch(prefix=""), route=action)
    return route_configuration(service.name, [rc.VirtualHost(name=service.name, domains=[service.name], routes=[route])])


def referenced_clusters(config: route_pb2.RouteConfiguration) -> frozenset[str]:
    """The clusters a route configuration sends traffic to (for make-before-break removal)."""
    names: set[str] = set()
    for virtual_host in config.virtual_hosts:
        for route in virtual_host.routes:
            names.update(route_clusters(route))
    return frozenset(names)


def route_clusters(route: rc.Route) -> list[str]:
    action = route.route
    # WhichOneof spares building the wrappers of fields not set (thousands of routes at the edge).
    which = action.WhichOneof("cluster_specifier")
    names = ([action.cluster] if action.cluster else []) if which == "cluster" else [w.name for w in action.weighted_clusters.clusters] if which == "weighted_clusters" else []
    if len(action.request_mirror_policies):
        names += [mirror.cluster for mirror in action.request_mirror_policies]
    return names
