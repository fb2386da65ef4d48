"""TCP services (docs/labels.md, "TCP services"): labels, port ownership and translation for every role."""

from __future__ import annotations

import pytest
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.model.build import build_mesh
from controlplane.model.host_rule import DefaultHostRule
from controlplane.model.labels import parse_container_labels
from controlplane.model.mesh import HealthCheckKind, Mesh, ProblemKind, Protocol
from controlplane.model.schema import FAMILIES
from controlplane.model.tcp_labels import HTTP_ONLY
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, SidecarRole
from controlplane.translate import translate
from controlplane.translate.cluster import HTTP_PROTOCOL_OPTIONS
from controlplane.translate.tcp import MAX_CONNECT_ATTEMPTS, TCP_PROXY
from controlplane.xds.types import TypeUrl

from .builders import cluster_state, task, task_definition

TCP = {"xds.service": "cache", "xds.protocol": "tcp", "xds.route.port": "16379"}


def _problems(labels: dict[str, str]) -> list[tuple[str | None, ProblemKind, str]]:
    container = ContainerDefinition(name="app", labels=labels, port_mappings=(PortMapping(6379),))
    parsed = parse_container_labels(container)
    return [(p.label, p.kind, p.message) for p in parsed.problems if p.severity == "error"]


def test_a_tcp_service_reads_its_port_and_the_labels_that_apply_to_connections() -> None:
    container = ContainerDefinition(
        name="app",
        labels={**TCP, "xds.health.check": "tcp", "xds.timeout.idle": "10m", "xds.lb.policy": "least_request",
                "xds.outlier.consecutive-local-origin-failures": "3", "xds.circuit-breaker.max-connections": "200",
                "xds.route.enabled": "false", "xds.scheme": "tls", "xds.upstreams": "ledger"},
        port_mappings=(PortMapping(6379),),
    )
    (declaration,) = parse_container_labels(container).declarations
    assert declaration.protocol is Protocol.TCP and declaration.route.port == 16379 and not declaration.route.enabled
    assert declaration.policy.health_check.kind is HealthCheckKind.TCP
    assert declaration.policy.timeouts.idle_ms == 600_000
    assert declaration.policy.outlier_detection.consecutive_local_origin_failures == 3
    assert declaration.policy.circuit_breakers.max_connections == 200


def test_a_tcp_service_needs_its_port_and_no_other_protocol_takes_one() -> None:
    assert _problems({"xds.service": "cache", "xds.protocol": "tcp"}) == [(
        "xds.protocol", ProblemKind.MISSING_LABEL,
        "label xds.protocol='tcp': a tcp service needs xds.route.port: the port the edge and sidecars listen on for its connections",
    )]
    assert _problems({"xds.service": "web", "xds.protocol": "http1", "xds.route.port": "8080"}) == [(
        "xds.route.port", ProblemKind.CONFLICTING_LABELS,
        "label xds.route.port='8080': expected with xds.protocol=tcp (it is http1): HTTP services are routed by host and path",
    )]
    assert _problems({**TCP, "xds.route.port": "65536"})[0][:2] == ("xds.route.port", ProblemKind.INVALID_VALUE)


HTTP_LABELS = sorted(HTTP_ONLY) + [family.prefix + family.example_key for family in FAMILIES]


@pytest.mark.parametrize("name", HTTP_LABELS)
def test_every_http_label_is_refused_on_a_tcp_service_with_one_precise_problem(name: str) -> None:
    """Whatever its value (even a malformed one), the one problem of the label is the protocol."""
    found = _problems({**TCP, f"xds.{name}": "1"})
    assert [(label, kind) for label, kind, _ in found] == [(f"xds.{name}", ProblemKind.CONFLICTING_LABELS)], found
    assert ": not with xds.protocol=tcp: " in found[0][2]


def test_the_problem_says_what_to_use_instead() -> None:
    (found,) = _problems({**TCP, "xds.outlier.consecutive-5xx": "5"})
    assert found[2] == (
        "label xds.outlier.consecutive-5xx='5': not with xds.protocol=tcp: it counts HTTP statuses: "
        "xds.outlier.consecutive-local-origin-failures counts failed tcp connects"
    )
    (found,) = _problems({**TCP, "xds.lb.policy": "ring_hash"})
    assert found == (
        "xds.lb.policy", ProblemKind.CONFLICTING_LABELS,
        "label xds.lb.policy='ring_hash': not with xds.protocol=tcp: expected round_robin, least_request or random: "
        "a tcp connection carries no header or cookie to hash",
    )
    (found,) = _problems({**TCP, "xds.health.check": "grpc"})
    assert found[2] == "label xds.health.check='grpc': not with xds.protocol=tcp: expected tcp (Envoy connects, nothing more) or none"


def test_a_connect_only_health_check_suits_http_services_too() -> None:
    assert _problems({"xds.service": "web", "xds.protocol": "http1", "xds.health.check": "tcp"}) == []


def _mesh(*declared: tuple[str, dict[str, str]], host_rule: DefaultHostRule | None = None) -> Mesh:
    tds = [task_definition(family, 1, labels, ports=(6379,)) for family, labels in declared]
    tasks = [task(td, f"{td.family}-a", f"127.0.{n}.1", started_at=float(n)) for n, td in enumerate(tds, start=1)]
    return build_mesh([cluster_state(tasks, tds)], host_rule=host_rule)


def test_the_first_tcp_service_on_a_port_keeps_it_and_the_newcomer_alone_is_refused() -> None:
    mesh = _mesh(
        ("cache", TCP),
        # Not routed at the edge, it still holds the port in the sidecars.
        ("ledger", {"xds.service": "ledger", "xds.protocol": "tcp", "xds.route.port": "15432", "xds.route.enabled": "false"}),
        ("late", {"xds.service": "late", "xds.protocol": "tcp", "xds.route.port": "16379"}),
        ("later", {"xds.service": "later", "xds.protocol": "tcp", "xds.route.port": "15432"}),
        ("other", {"xds.service": "other", "xds.protocol": "tcp", "xds.route.port": "16380"}),
    )
    assert [s.name for s in mesh.services] == ["cache", "ledger", "other"]
    refused = {p.service: p for p in mesh.problems}
    assert set(refused) == {"late", "later"}
    assert refused["late"].kind is ProblemKind.ROUTE_CONFLICT and refused["late"].label == "xds.route.port"
    assert refused["late"].message == (
        "task definition late:1, container 'app': service 'late' is refused: its tcp port 16379 (xds.route.port) is the port "
        "of service 'cache' (task definition cache:1), which served it first; give one of them another xds.route.port, "
        "or each its xds.route.hosts (TLS SNI names) to share the port"
    )


def test_tcp_services_take_no_http_route_nor_a_default_host() -> None:
    """A TCP service's unused host and path (`*`, `/`) clash with no HTTP service's."""
    mesh = _mesh(("cache", TCP), ("web", {"xds.service": "web", "xds.protocol": "http1"}), host_rule=DefaultHostRule("{service}.example.com"))
    assert mesh.problems == ()
    assert [(vh.host, vh.routes) for vh in mesh.virtual_hosts] == [("web.example.com", ("web",))]
    assert mesh.service("cache").route.hosts == ("*",)  # type: ignore[union-attr]


def test_weights_and_mirrors_naming_a_tcp_service_are_dropped_with_a_warning() -> None:
    mesh = _mesh(
        ("cache", TCP),
        ("web", {"xds.service": "web", "xds.protocol": "http1", "xds.route.weights": "web:90,cache:10", "xds.mirror.service": "cache"}),
    )
    web = mesh.service("web")
    assert web is not None and web.split is not None and [t.service for t in web.split.targets] == ["web"]
    assert web.policy.mirror is None
    warnings = sorted(p.message for p in mesh.problems)
    assert [p.kind for p in mesh.problems] == [ProblemKind.UNKNOWN_TARGET] * 2
    assert "label xds.mirror.service names 'cache', a tcp service, which takes no HTTP calls; calls are not mirrored until one does" in warnings[0]
    assert "label xds.route.weights names 'cache', a tcp service, which takes no HTTP calls; the remaining weights are used" in warnings[1]


def _tcp_mesh() -> Mesh:
    return _mesh(
        ("cache", {**TCP, "xds.health.check": "tcp", "xds.timeout.idle": "10m", "xds.scheme": "tls"}),
        ("web", {"xds.service": "web", "xds.protocol": "http1", "xds.route.hosts": "www.example.com"}),
        ("caller", {"xds.service": "caller", "xds.route.hosts": "caller.example.com", "xds.upstreams": "cache,web"}),
    )


def _proxy(listener: object) -> tcp_proxy_pb2.TcpProxy:
    (chain,) = listener.filter_chains  # type: ignore[attr-defined]
    (network_filter,) = chain.filters
    assert network_filter.name == TCP_PROXY
    proxy = tcp_proxy_pb2.TcpProxy()
    assert network_filter.typed_config.Unpack(proxy)
    return proxy


def test_the_edge_listens_for_a_tcp_service_on_its_port_and_balances_per_connection() -> None:
    resources = translate(_tcp_mesh(), EdgeRole("127.0.0.1", 10000))
    listeners = resources.of(TypeUrl.LISTENER)
    assert sorted(listeners) == ["edge", "tcp/cache"]
    listener = listeners["tcp/cache"]
    assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("127.0.0.1", 16379)  # type: ignore[attr-defined]
    proxy = _proxy(listener)
    assert (proxy.cluster, proxy.stat_prefix, proxy.max_connect_attempts.value) == ("cache", "cache", MAX_CONNECT_ATTEMPTS)
    assert proxy.idle_timeout.seconds == 600 and len(proxy.access_log) == 1
    cluster = resources.of(TypeUrl.CLUSTER)["cache"]
    assert HTTP_PROTOCOL_OPTIONS not in cluster.typed_extension_protocol_options  # type: ignore[attr-defined]
    (check,) = cluster.health_checks  # type: ignore[attr-defined]
    assert check.WhichOneof("health_checker") == "tcp_health_check" and not check.tcp_health_check.HasField("send")
    context = tls_pb2.UpstreamTlsContext()
    assert cluster.transport_socket.typed_config.Unpack(context) and list(context.common_tls_context.alpn_protocols) == []  # type: ignore[attr-defined]
    # The edge's own port is never given to a TCP service: Envoy would refuse every listener.
    assert sorted(translate(_tcp_mesh(), EdgeRole("127.0.0.1", 16379)).of(TypeUrl.LISTENER)) == ["edge"]


def test_a_sidecar_gets_a_listener_per_tcp_upstream_and_a_tcp_inbound_for_a_tcp_app() -> None:
    mesh = _tcp_mesh()
    caller = translate(mesh, SidecarRole("caller", outbound_address="127.0.0.1", outbound_port=15001))
    listeners = caller.of(TypeUrl.LISTENER)
    assert sorted(listeners) == ["outbound", "tcp/cache"]
    assert listeners["tcp/cache"].address.socket_address.port_value == 16379  # type: ignore[attr-defined]
    assert _proxy(listeners["tcp/cache"]).cluster == "cache"
    assert sorted(caller.of(TypeUrl.CLUSTER)) == ["cache", "web"]
    # HTTP routes only for HTTP upstreams.
    (outbound,) = caller.of(TypeUrl.ROUTE).values()
    assert [vh.domains[0] for vh in outbound.virtual_hosts] == ["web", "*"]  # type: ignore[attr-defined]
    assert sorted(translate(mesh, SidecarRole("caller", outbound_port=16379)).of(TypeUrl.LISTENER)) == ["outbound"]

    cache = translate(mesh, SidecarRole("cache", inbound_address="127.0.0.1", inbound_port=16380, app_port=6379))
    inbound = cache.of(TypeUrl.LISTENER)["inbound"]
    assert _proxy(inbound).cluster == "local_app"
    assert HTTP_PROTOCOL_OPTIONS not in cache.of(TypeUrl.CLUSTER)["local_app"].typed_extension_protocol_options  # type: ignore[attr-defined]


def test_a_proxyless_grpc_client_never_receives_a_tcp_service() -> None:
    mesh = _tcp_mesh()
    assert sorted(translate(mesh, GrpcClientRole("caller")).of(TypeUrl.CLUSTER)) == ["web"]
    # With no upstreams declared, every service it could call: still not the TCP one.
    assert "cache" not in translate(mesh, GrpcClientRole("nobody")).of(TypeUrl.CLUSTER)


def test_the_admin_api_shows_a_tcp_service_by_its_port() -> None:
    from controlplane.admin.views import service

    mesh = _tcp_mesh()
    cache, web = mesh.service("cache"), mesh.service("web")
    assert cache is not None and web is not None
    shown = service(cache, mesh.problems)
    assert (shown.protocol, list(shown.route.hosts), shown.route.path_prefix, shown.route.port) == ("tcp", [], "", 16379)
    assert (list(service(web, ()).route.hosts), service(web, ()).route.port) == (["www.example.com"], 0)


def test_a_tcp_service_splits_connections_by_weight_between_tcp_services_only() -> None:
    mesh = _mesh(
        ("ledger", {"xds.service": "ledger", "xds.protocol": "tcp", "xds.route.port": "15432", "xds.route.weights": "ledger:0,next:100,web:5"}),
        ("next", {"xds.service": "next", "xds.protocol": "tcp", "xds.route.port": "15433", "xds.route.enabled": "false"}),
        ("web", {"xds.service": "web", "xds.protocol": "http1"}),
    )
    (warning,) = mesh.problems
    assert warning.kind is ProblemKind.UNKNOWN_TARGET and warning.severity == "warning"
    assert "names 'web', an HTTP service, which takes no tcp connections; the remaining weights are used" in warning.message
    listeners = translate(mesh, EdgeRole("127.0.0.1", 10000)).of(TypeUrl.LISTENER)
    # Blue-green: the idle side (weight 0) is left out, Envoy refuses a weight of 0 in a TCP proxy.
    assert _proxy(listeners["tcp/ledger"]).cluster == "next"
    assert "tcp/next" not in listeners


def test_a_tcp_service_splits_connections_by_revision() -> None:
    old = task_definition("ledger", 1, {"xds.service": "ledger", "xds.protocol": "tcp", "xds.route.port": "15432"}, ports=(5432,))
    new = task_definition("ledger", 2, {"xds.service": "ledger", "xds.protocol": "tcp", "xds.route.port": "15432",
                                        "xds.route.newest-revision-weight": "10"}, ports=(5432,))
    caller = task_definition("caller", 1, {"xds.service": "caller", "xds.upstreams": "ledger"})
    tasks = [task(old, "old", "127.0.1.1", started_at=1.0), task(new, "new", "127.0.1.2", started_at=2.0), task(caller, "c", "127.0.2.1")]
    mesh = build_mesh([cluster_state(tasks, [old, new, caller])])
    assert [p.kind for p in mesh.problems] == [ProblemKind.REVISION_MISMATCH]  # the rollout under way, a warning
    sidecar = translate(mesh, SidecarRole("caller"))
    weighted = _proxy(sidecar.of(TypeUrl.LISTENER)["tcp/ledger"]).weighted_clusters.clusters
    assert [(c.name, c.weight) for c in weighted] == [("ledger@ledger:2", 10), ("ledger@ledger:1", 90)]
    assert sorted(sidecar.of(TypeUrl.CLUSTER)) == ["ledger", "ledger@ledger:1", "ledger@ledger:2"]


def test_weights_of_a_tcp_service_without_an_edge_listener_are_not_said_to_have_no_effect() -> None:
    """Its sidecars listen on its port and split by its weights."""
    labels = {**TCP, "xds.route.enabled": "false", "xds.route.weights": "cache:90,next:10"}
    container = ContainerDefinition(name="app", labels=labels, port_mappings=(PortMapping(6379),))
    assert parse_container_labels(container).problems == ()


def _sni(service: str, hosts: str | None = None, port: str = "15443", **labels: str) -> tuple[str, dict[str, str]]:
    declared = {"xds.service": service, "xds.protocol": "tcp", "xds.route.port": port, **labels}
    return service, declared if hosts is None else {**declared, "xds.route.hosts": hosts}


def test_tcp_services_share_a_port_by_sni_names_and_one_catch_all() -> None:
    mesh = _mesh(_sni("a", "a.test"), _sni("b", "b.test,*.b.test"), _sni("rest"), _sni("shop", "*.example.com"), _sni("www", "www.example.com"))
    assert mesh.problems == ()
    assert [(s.name, s.route.server_names) for s in mesh.services] == [
        ("a", ("a.test",)), ("b", ("*.b.test", "b.test")), ("rest", ()), ("shop", ("*.example.com",)), ("www", ("www.example.com",)),
    ]


def test_the_owner_of_an_sni_name_keeps_it_and_the_newcomer_alone_is_refused() -> None:
    # `aa` sorts first but starts later: the established order, not the name, decides.
    mesh = _mesh(_sni("b", "b.test,c.test"), _sni("aa", "a.test,C.test"), _sni("d", "d.test", port="15444"), _sni("e", "d.test", port="15445"))
    assert [s.name for s in mesh.services] == ["b", "d", "e"]  # the same name on another port is another name
    (refused,) = mesh.problems
    assert (refused.service, refused.kind, refused.label, refused.value) == ("aa", ProblemKind.ROUTE_CONFLICT, "xds.route.hosts", "a.test,c.test")
    assert refused.message == (
        "task definition aa:1, container 'app': service 'aa' is refused: on its tcp port 15443, TLS SNI name c.test "
        "(xds.route.hosts) is taken by service 'b' (task definition b:1), which served it first; give one of them another "
        "xds.route.hosts or xds.route.port"
    )


def test_a_port_has_one_catch_all() -> None:
    mesh = _mesh(_sni("a", "a.test"), _sni("first"), _sni("second", "*"))  # `*` is the catch-all, as no hosts
    assert [s.name for s in mesh.services] == ["a", "first"]
    (refused,) = mesh.problems
    assert (refused.service, refused.label, refused.value) == ("second", "xds.route.port", "15443")
    assert "its tcp port 15443 (xds.route.port) is the port of service 'first' (task definition first:1)" in refused.message


def test_the_catch_all_wildcard_goes_alone() -> None:
    assert _problems({**TCP, "xds.route.hosts": "a.test,*"}) == [(
        "xds.route.hosts", ProblemKind.CONFLICTING_LABELS,
        "label xds.route.hosts='a.test,*': '*' is the port's catch-all (every connection no other service's SNI name takes): "
        "give it alone, or only SNI names",
    )]
    assert _problems({**TCP, "xds.route.hosts": "*.a.test"}) == []
    assert _problems({**TCP, "xds.route.hosts": "a b"})[0][:2] == ("xds.route.hosts", ProblemKind.INVALID_VALUE)


def _chains(listener: object) -> list[tuple[str, list[str], str]]:
    found = []
    for chain in listener.filter_chains:  # type: ignore[attr-defined]
        proxy = tcp_proxy_pb2.TcpProxy()
        assert chain.filters[0].typed_config.Unpack(proxy)
        found.append((chain.name, list(chain.filter_chain_match.server_names), proxy.cluster))
    return found


def test_a_port_shared_by_sni_gets_one_listener_with_a_chain_per_service_at_the_edge_and_in_sidecars() -> None:
    mesh = _mesh(
        _sni("a", "a.test"), _sni("b", "b.test"), _sni("rest"), _sni("cache", port="16379"),
        ("caller", {"xds.service": "caller", "xds.route.hosts": "caller.example.com", "xds.upstreams": "b,rest,cache"}),
    )
    listeners = translate(mesh, EdgeRole("127.0.0.1", 10000)).of(TypeUrl.LISTENER)
    assert sorted(listeners) == ["edge", "tcp/cache", "tcp/port/15443"]
    shared = listeners["tcp/port/15443"]
    assert [f.name for f in shared.listener_filters] == ["envoy.filters.listener.tls_inspector"]  # type: ignore[attr-defined]
    assert _chains(shared) == [("a", ["a.test"], "a"), ("b", ["b.test"], "b"), ("rest", [], "rest")]
    assert not listeners["tcp/cache"].listener_filters  # type: ignore[attr-defined]
    sidecar = translate(mesh, SidecarRole("caller", outbound_address="127.0.0.1", outbound_port=15001)).of(TypeUrl.LISTENER)
    assert sorted(sidecar) == ["outbound", "tcp/cache", "tcp/port/15443"]
    assert _chains(sidecar["tcp/port/15443"]) == [("b", ["b.test"], "b"), ("rest", [], "rest")]
    # One service with SNI names alone on its port: still matched by name (other names are refused).
    alone = translate(_mesh(_sni("a", "a.test")), EdgeRole("127.0.0.1", 10000)).of(TypeUrl.LISTENER)
    assert _chains(alone["tcp/port/15443"]) == [("a", ["a.test"], "a")]


def test_a_label_change_of_one_sni_service_reaches_the_shared_listener_through_the_memo() -> None:
    from controlplane.translate import TranslationMemo

    memo, edge = TranslationMemo(), EdgeRole("127.0.0.1", 10000)
    before = translate(_mesh(_sni("a", "a.test"), _sni("b", "b.test")), edge, memo).of(TypeUrl.LISTENER)["tcp/port/15443"]
    after = translate(_mesh(_sni("a", "a.test"), _sni("b", "b.test", **{"xds.timeout.idle": "5m"})), edge, memo)
    listener = after.of(TypeUrl.LISTENER)["tcp/port/15443"]
    assert listener is not before
    proxy = tcp_proxy_pb2.TcpProxy()
    assert listener.filter_chains[1].filters[0].typed_config.Unpack(proxy) and proxy.idle_timeout.seconds == 300  # type: ignore[attr-defined]


def test_the_admin_api_and_cli_show_a_tcp_service_s_sni_names() -> None:
    from controlplane.admin.client import _route_text
    from controlplane.admin.views import service

    mesh = _mesh(_sni("a", "a.test,*.a.test"), _sni("rest"))
    a, rest = service(mesh.service("a"), ()), service(mesh.service("rest"), ())  # type: ignore[arg-type]
    assert (list(a.route.hosts), a.route.port, list(rest.route.hosts)) == (["*.a.test", "a.test"], 15443, [])
    assert (_route_text(a.route), _route_text(rest.route)) == ("tcp:15443 sni=*.a.test,a.test", "tcp:15443")
