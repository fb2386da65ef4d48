"""xDS identities: certificate SANs and bearer tokens name the role and service a proxy may claim;
the server refuses other claims (real grpcio client over loopback)."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest
from envoy.service.cluster.v3 import cds_pb2_grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from controlplane.admin import views
from controlplane.cache.store import SnapshotCache
from controlplane.errors import SettingsError
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, SidecarRole
from controlplane.server.ads import DiscoveryServer
from controlplane.server.authorize import StreamAuthorizer
from controlplane.server.identity import Claim, Identity, SanScheme
from controlplane.server.observer import NoObserver
from controlplane.server.registry import ProxyRegistry
from controlplane.server.tokens import TokenBook, token_digest

from .xds import CDS, mesh, names, request, service

pytestmark = pytest.mark.timeout(20)
ORDERS_TOKEN = "orders-token-0123456789"
EDGE_TOKEN = "edge-token-0123456789ab"
READ_TIMEOUT = 5.0


# -- identities from SANs ---------------------------------------------------------------------


def test_the_default_scheme_reads_role_and_service_from_a_spiffe_uri() -> None:
    found = SanScheme().identities(
        ["127.0.0.1", "localhost", "spiffe://ecs.local/ecs/sidecar/orders", "spiffe://elsewhere/ecs/sidecar/billing", "spiffe://ecs.local/ecs/admin/x"]
    )
    assert found == [Identity(name="spiffe://ecs.local/ecs/sidecar/orders", role="sidecar", service="orders")]


def test_a_dns_template_works_the_same_way() -> None:
    scheme = SanScheme("{service}.{role}.mesh.internal")
    assert scheme.identities(["orders.grpc-client.mesh.internal", "orders.sidecar.mesh.internal.evil"]) == [
        Identity(name="orders.grpc-client.mesh.internal", role="grpc-client", service="orders")
    ]
    assert scheme.san("sidecar", "billing") == "billing.sidecar.mesh.internal"


@pytest.mark.parametrize("template", ["spiffe://x/{role}", "spiffe://x/{role}/{service}/{node}", "{role}/{service}/{role}"])
def test_a_template_needs_role_and_service_exactly_once(template: str) -> None:
    with pytest.raises(SettingsError, match=r"\{role\} and \{service\}"):
        SanScheme(template)


def test_an_identity_permits_its_own_role_and_service_only() -> None:
    orders = Identity("spiffe://ecs.local/ecs/sidecar/orders", "sidecar", "orders")
    assert orders.permits(Claim.of(SidecarRole("orders", inbound_port=15000, app_port=8080)))
    assert not orders.permits(Claim.of(SidecarRole("billing")))
    assert not orders.permits(Claim.of(GrpcClientRole("orders")))
    assert not orders.permits(Claim.of(EdgeRole()))
    edge = Identity("token:edge", "edge", "")
    assert edge.permits(Claim.of(EdgeRole("127.0.0.1", 10001))) and not edge.permits(Claim.of(SidecarRole("orders")))
    any_sidecar = Identity("token:ops", "sidecar", "*")
    assert any_sidecar.permits(Claim.of(SidecarRole("billing"))) and not any_sidecar.permits(Claim.of(GrpcClientRole("billing")))


# -- the tokens file ----------------------------------------------------------------------------


def write_tokens(tmp_path: Path, entries: object) -> Path:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": entries}))
    return path


def test_tokens_are_found_by_value_or_by_sha256(tmp_path: Path) -> None:
    book = TokenBook.load(
        write_tokens(
            tmp_path,
            [
                {"name": "orders", "token": ORDERS_TOKEN, "role": "sidecar", "service": "orders"},
                {"name": "edge", "sha256": token_digest(EDGE_TOKEN), "role": "edge"},
            ],
        )
    )
    assert book.identity(ORDERS_TOKEN) == Identity("token:orders", "sidecar", "orders")
    assert book.identity(EDGE_TOKEN) == Identity("token:edge", "edge", "")
    assert book.identity("guess-guess-guess-guess") is None


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "a", "token": "short", "role": "edge"}, "at least 16 characters"),
        ({"name": "a", "token": ORDERS_TOKEN, "sha256": token_digest(ORDERS_TOKEN), "role": "edge"}, "exactly one of token or sha256"),
        ({"name": "a", "sha256": "abc", "role": "edge"}, "64 lowercase hex digits"),
        ({"name": "a", "token": ORDERS_TOKEN, "role": "admin"}, "role 'admin': expected one of edge, sidecar, grpc-client or \\*"),
        ({"name": "a", "token": ORDERS_TOKEN, "role": "sidecar"}, "role sidecar needs a service"),
        ({"name": "a", "token": ORDERS_TOKEN, "role": "edge", "scope": "x"}, "unknown field 'scope'"),
        ({"token": ORDERS_TOKEN, "role": "edge"}, "expected a name"),
    ],
)
def test_a_bad_tokens_entry_is_refused_naming_the_entry(tmp_path: Path, entry: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=f"entry 1.*{message}"):
        TokenBook.load(write_tokens(tmp_path, [entry]))


def test_a_token_listed_twice_is_refused(tmp_path: Path) -> None:
    entries = [{"name": "a", "token": ORDERS_TOKEN, "role": "edge"}, {"name": "b", "sha256": token_digest(ORDERS_TOKEN), "role": "edge"}]
    with pytest.raises(SettingsError, match="entry 2 \\(token:b\\): the same token as entry 1 \\(token:a\\)"):
        TokenBook.load(write_tokens(tmp_path, entries))


def test_a_tokens_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("orders: x")
    with pytest.raises(SettingsError, match="not JSON"):
        TokenBook.load(path)


# -- the server refuses claims the credentials do not allow ----------------------------------------


def sidecar_request(service_name: str, node_id: str = "orders-1") -> discovery_pb2.DiscoveryRequest:
    req = request(CDS, node_id=node_id)
    req.node.metadata.update({"role": "sidecar", "service": service_name})
    return req


class RefusalsSeen(NoObserver):
    """Records the reason of every refused stream, as the metrics observer counts them."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def refused(self, node_id: str, reason: str) -> None:
        self.seen.append(reason)


@asynccontextmanager
async def serving(tmp_path: Path, refusals: list[str]) -> AsyncIterator[tuple[grpc.aio.Channel, ProxyRegistry]]:
    book = TokenBook.load(
        write_tokens(
            tmp_path,
            [
                {"name": "orders", "token": ORDERS_TOKEN, "role": "sidecar", "service": "orders"},
                {"name": "edge", "token": EDGE_TOKEN, "role": "edge"},
            ],
        )
    )
    cache, registry = SnapshotCache(), ProxyRegistry()
    # orders calls billing: the sidecar config of orders holds the billing cluster and its addresses.
    cache.set_mesh(mesh(replace(service("orders", "127.0.10.1"), upstreams=("billing",)), service("billing", "127.0.11.1")))
    server = grpc.aio.server()
    observer = RefusalsSeen(refusals)
    server.add_generic_rpc_handlers(DiscoveryServer(cache, registry, observer, authorizer=StreamAuthorizer(tokens=book)).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, registry
    finally:
        await channel.close()
        await server.stop(0)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def first_response(call: grpc.aio.StreamStreamCall, req: object) -> discovery_pb2.DiscoveryResponse:
    await call.write(req)
    response = await asyncio.wait_for(call.read(), READ_TIMEOUT)
    assert response is not grpc.aio.EOF
    return response  # type: ignore[no-any-return]


async def refused(call: grpc.aio.StreamStreamCall, req: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await first_response(call, req)
    return caught.value


def test_a_token_of_orders_gets_the_sidecar_config_of_orders_and_is_refused_that_of_billing(tmp_path: Path) -> None:
    async def scenario() -> None:
        refusals: list[str] = []
        async with serving(tmp_path, refusals) as (channel, registry):
            ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            allowed = ads.StreamAggregatedResources(metadata=bearer(ORDERS_TOKEN))
            assert names(await first_response(allowed, sidecar_request("orders"))) == ["billing"]
            (record,) = registry.proxies()
            assert (record.node_id, record.identity) == ("orders-1", "token:orders")

            error = await refused(ads.StreamAggregatedResources(metadata=bearer(ORDERS_TOKEN)), sidecar_request("billing", "billing-1"))
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error.details() == (
                "node 'billing-1' claims sidecar of billing, which its credentials do not allow: token:orders may claim sidecar of orders"
            )
            # Every xDS service checks, not only ADS: Delta and the per-type services too.
            delta = ads.DeltaAggregatedResources(metadata=bearer(ORDERS_TOKEN))
            delta_request = discovery_pb2.DeltaDiscoveryRequest(type_url=CDS.value)
            delta_request.node.CopyFrom(sidecar_request("billing").node)
            assert (await refused(delta, delta_request)).code() == grpc.StatusCode.PERMISSION_DENIED
            cds = cds_pb2_grpc.ClusterDiscoveryServiceStub(channel).StreamClusters(metadata=bearer(EDGE_TOKEN))
            assert (await refused(cds, sidecar_request("orders"))).code() == grpc.StatusCode.PERMISSION_DENIED
            assert refusals == ["permission_denied"] * 3
            assert [r.stream_id for r in registry.proxies()] == [record.stream_id]

    asyncio.run(scenario())


def test_no_token_or_an_unknown_token_is_unauthenticated(tmp_path: Path) -> None:
    async def scenario() -> None:
        refusals: list[str] = []
        async with serving(tmp_path, refusals) as (channel, registry):
            ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            missing = await refused(ads.StreamAggregatedResources(), sidecar_request("orders"))
            assert missing.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "send metadata 'authorization: Bearer <token>'" in (missing.details() or "")
            unknown = await refused(ads.StreamAggregatedResources(metadata=bearer("x" * 20)), sidecar_request("orders"))
            assert (unknown.code(), unknown.details()) == (grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
            assert refusals == ["unauthenticated", "unauthenticated"]
            assert registry.proxies() == []

    asyncio.run(scenario())


def test_two_streams_claiming_one_node_id_are_listed_separately(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with serving(tmp_path, []) as (channel, registry):
            ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            await first_response(ads.StreamAggregatedResources(metadata=bearer(ORDERS_TOKEN)), sidecar_request("orders", "shared"))
            edge = request(CDS, node_id="shared")
            edge.node.metadata.update({"role": "edge", "listen_address": "127.0.0.1", "listen_port": 10080})
            await first_response(ads.StreamAggregatedResources(metadata=bearer(EDGE_TOKEN)), edge)
            listed = [views.proxy(record) for record in registry.proxies()]
            assert [(p.node_id, p.identity, p.role.split("/")[0]) for p in listed] == [
                ("shared", "token:orders", "sidecar"),
                ("shared", "token:edge", "edge"),
            ]
            assert len({p.stream_id for p in listed}) == 2
            assert views.proxy_config(registry.proxies()[0]).identity == "token:orders"

    asyncio.run(scenario())


def test_without_authentication_every_claim_is_admitted_anonymously(tmp_path: Path) -> None:
    assert not StreamAuthorizer().required
    assert StreamAuthorizer(certificates=True).required
