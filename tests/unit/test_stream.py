"""The xDS state machine without a network: requests and snapshots in, responses out.

Every shared protocol rule runs against both state-of-the-world and Delta (the `protocol`
fixture); what only one of them does is tested in test_stream_sotw.py and test_stream_delta.py."""

from __future__ import annotations

import pytest

from controlplane.xds.types import ORDER, TypeUrl

from .xds import CDS, EDS, LDS, RDS, Proxy, addresses, mesh, routed_clusters, service, shorts, snapshot

pytestmark = pytest.mark.parametrize("protocol", ["sotw", "delta"])


def test_first_wildcard_cds_request_gets_every_cluster(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.snapshot = snap = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))

    (reply,) = proxy.ask(CDS)

    assert reply.short == "CDS" and reply.names == ["billing", "orders"]
    assert reply.version == snap.version(CDS) == proxy.record.status(CDS).sent_version
    assert reply.nonce == "t-1"


def test_an_explicit_wildcard_cds_request_gets_every_cluster_too(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.snapshot = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (reply,) = proxy.ask(CDS, ("*",))
    assert reply.names == ["billing", "orders"]


def test_eds_answers_by_name(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.snapshot = snapshot(mesh(service("orders", "127.0.0.1", "127.0.0.3"), service("billing", "127.0.0.2")))

    (reply,) = proxy.ask(EDS, ("orders", "unknown"))

    assert reply.names == ["orders"]
    assert addresses(reply, "orders") == [("127.0.0.1", 50051), ("127.0.0.3", 50051)]
    assert proxy.record.status(EDS).resource_names == ("orders", "unknown")


def test_lds_and_rds_wait_for_the_cds_ack_and_eds_subscription_to_every_cluster(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.snapshot = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))

    (cds,) = proxy.ask(CDS)
    assert proxy.ask(LDS) == []
    assert proxy.ask(RDS, ("edge",)) == []
    # EDS for one cluster only: still not settled.
    (eds,) = proxy.ask(EDS, ("orders",))
    assert eds.names == ["orders"]
    # CDS ACKed, but billing's endpoints not yet asked for.
    assert proxy.ack(cds) == []

    replies = proxy.ack(eds, ("billing", "orders"))

    assert shorts(replies) == ["EDS", "LDS", "RDS"]
    assert "billing" in replies[0].names
    assert proxy.holds(EDS) == ["orders"]  # not ACKed yet
    assert routed_clusters(replies[2]) == ["billing", "orders"]


def test_a_single_type_stream_answers_without_waiting_for_clusters(protocol: str) -> None:
    proxy = Proxy(protocol, ordered=False)
    proxy.snapshot = snapshot(mesh(service("orders", "127.0.0.1")))
    (lds,) = proxy.ask(LDS)
    assert lds.names == ["edge"]


def test_a_full_handshake_sends_each_type_once(protocol: str) -> None:
    snap = snapshot(mesh(service("orders", "127.0.0.1")))
    proxy = Proxy(protocol)
    sent = proxy.handshake(snap)
    assert {k: v.version for k, v in sent.items()} == {t.short: snap.version(t) for t in (CDS, EDS, LDS, RDS)}
    assert [proxy.record.status(t).acked_version for t in (CDS, EDS, LDS, RDS)] == [snap.version(t) for t in (CDS, EDS, LDS, RDS)]
    assert proxy.push(snap) == []
    # The same content built anew (another revision of the mesh) sends nothing either.
    assert proxy.push(snapshot(mesh(service("orders", "127.0.0.1")))) == []
    assert {t.short: proxy.holds(t) for t in (CDS, EDS, LDS, RDS)} == {"CDS": ["orders"], "EDS": ["orders"], "LDS": ["edge"], "RDS": ["edge"]}


def test_a_stale_nonce_is_ignored(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.snapshot = snapshot(mesh(service("orders", "127.0.0.1")))
    second = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (old,) = proxy.ask(CDS)
    (new,) = proxy.push(second)

    # An ACK and a NACK of the superseded response change nothing and get no answer.
    assert proxy.ack(old) == []
    assert proxy.nack(old, "late complaint") == []

    status = proxy.record.status(CDS)
    assert status.acked_version is None
    assert status.nacks == 0 and status.last_nack is None
    assert status.sent_version == new.version == second.version(CDS)
    # The latest one is still answerable.
    assert proxy.ack(new) == []
    assert status.acked_version == second.version(CDS)


def test_a_nack_is_recorded_and_the_rejected_version_is_not_resent(protocol: str) -> None:
    one = snapshot(mesh(service("orders", "127.0.0.1")))
    proxy = Proxy(protocol)
    proxy.handshake(one)
    two = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (rejected,) = proxy.push(two)
    assert rejected.short == "CDS" and "billing" in rejected.names

    # The routes waited for the answer to the clusters; the proxy will not ask for the endpoints of
    # a cluster it rejected, so they go now.
    (routes,) = proxy.nack(rejected, "cluster 'billing': invalid connect_timeout")
    assert routes.short == "RDS"
    assert proxy.ack(routes) == []

    status = proxy.record.status(CDS)
    assert status.nacks == 1
    assert status.last_nack is not None
    assert status.last_nack.message == "cluster 'billing': invalid connect_timeout"
    assert status.last_nack.version == two.version(CDS) == rejected.version
    assert status.acked_version == one.version(CDS)
    assert proxy.holds(CDS) == ["orders"]
    # Following requests of any type, and pushes of an identical snapshot (even one built anew), do not resend it.
    assert proxy.ask(EDS, ("orders",)) == []
    assert proxy.ask(LDS) == []
    assert proxy.push(two) == []
    assert proxy.push(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))) == []
    assert status.responses_sent == 2

    # A changed config is sent.
    three = snapshot(mesh(service("orders", "127.0.0.7"), service("billing", "127.0.0.2")))
    replies = proxy.push(three)
    assert shorts(replies) == ["EDS"]  # the clusters are unchanged (still rejected): only orders' endpoints moved
    assert addresses(replies[0], "orders") == [("127.0.0.7", 50051)]
    four = snapshot(mesh(service("orders", "127.0.0.7"), service("billing-v2", "127.0.0.9")))
    (cds,) = proxy.push(four)
    assert cds.short == "CDS" and "billing-v2" in cds.names
    assert proxy.ack(cds) == []
    assert "billing-v2" in proxy.holds(CDS) and status.acked_version == cds.version


def test_a_rejected_resource_is_offered_again_after_a_doubling_backoff(protocol: str) -> None:
    # Envoy rejects a listener whose port is taken; once the port is free, the same listener works.
    one = snapshot(mesh(service("orders", "127.0.0.1")))
    proxy = Proxy(protocol)
    proxy.handshake(one)
    moved = snapshot(mesh(service("orders", "127.0.0.1")), listen_port=10001)
    (rejected,) = proxy.push(moved)
    assert rejected.short == "LDS"
    status = proxy.record.status(LDS)
    started = proxy.clock.now

    # 10 s, then 20 s, then 40 s... capped at 300 s; never in a loop.
    for attempt, backoff in enumerate((10, 20, 40, 80, 160, 300, 300), start=1):
        assert proxy.nack(rejected, "cannot bind 127.0.0.1:10001") == []
        assert status.retry_at == proxy.clock.now + backoff
        assert proxy.stream.next_retry_at() == status.retry_at
        assert proxy.push(moved) == [] and proxy.ask(EDS, ("orders",)) == []
        assert proxy.after(backoff - 1) == [], f"resent {backoff - 1}s after NACK {attempt}"
        (again,) = proxy.after(1)
        assert again.short == "LDS" and again.version == moved.version(LDS)
        assert status.resends == attempt and status.nacks == attempt
        rejected = again
    assert proxy.clock.now - started == 10 + 20 + 40 + 80 + 160 + 300 + 300

    # Accepted at last: the proxy runs it, nothing else is due, and the next NACK starts at 10 s again.
    assert proxy.ack(rejected) == []
    assert status.acked_version == moved.version(LDS)
    assert status.retry_at is None and proxy.stream.next_retry_at() is None
    assert proxy.after(1000) == []
    (three,) = proxy.push(snapshot(mesh(service("orders", "127.0.0.1")), listen_port=10002))
    assert proxy.nack(three, "bad") == []
    assert status.retry_at == proxy.clock.now + 10


def test_a_changed_resource_is_sent_at_once_even_during_a_backoff(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"))))
    (rejected,) = proxy.push(snapshot(mesh(service("orders", "127.0.0.1")), listen_port=10001))
    assert proxy.nack(rejected, "cannot bind") == []
    (fixed,) = proxy.push(snapshot(mesh(service("orders", "127.0.0.1")), listen_port=10002))
    assert fixed.short == "LDS"
    assert proxy.ack(fixed) == []
    assert proxy.record.status(LDS).resends == 0 and proxy.stream.next_retry_at() is None
    assert proxy.after(1000) == []


def test_versions_are_content_hashes_equal_across_independent_snapshots(protocol: str) -> None:
    build = lambda: snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))  # noqa: E731
    one, two = build(), build()
    first, second = Proxy(protocol), Proxy(protocol)
    first.snapshot, second.snapshot = one, two
    (a,) = first.ask(CDS)
    (b,) = second.ask(CDS)  # a restarted control plane: a new stream

    assert a.version == b.version and a.version not in ("", "0", "1")
    assert [r.SerializeToString() for r in a.resources.values()] == [r.SerializeToString() for r in b.resources.values()]  # type: ignore[attr-defined]
    assert a.resource_versions == b.resource_versions
    other = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.3")))
    assert other.version(EDS) != one.version(EDS) and other.version(CDS) == one.version(CDS)


def test_an_endpoint_only_change_pushes_only_eds(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    replies = proxy.push(snapshot(mesh(service("orders", "127.0.0.1", "127.0.0.5"), service("billing", "127.0.0.2"))))
    assert shorts(replies) == ["EDS"]
    assert addresses(replies[0], "orders") == [("127.0.0.1", 50051), ("127.0.0.5", 50051)]


def test_make_before_break_when_a_service_is_removed(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    without = snapshot(mesh(service("orders", "127.0.0.1")))

    # The routes go first; CDS keeps billing while Envoy's routes may still send to it.
    (rds,) = proxy.push(without)
    assert rds.short == "RDS" and routed_clusters(rds) == ["orders"]
    # Anything happening before the RDS ACK must not drop the cluster either.
    assert proxy.push(without) == []
    assert proxy.ask(LDS) == []
    assert proxy.holds(CDS) == ["billing", "orders"]

    # Once the routes are in, the cluster goes.
    replies = proxy.ack(rds)
    assert shorts(replies)[0] == "CDS"
    cds = replies[0]
    assert cds.version == without.version(CDS)
    assert proxy.ack(cds) == []
    assert proxy.holds(CDS) == ["orders"]
    # Envoy narrows its EDS subscription; billing's endpoints are no longer offered.
    for reply in proxy.ack(proxy.answered[EDS], ("orders",)):
        assert reply.names == ["orders"]
    assert proxy.holds(EDS) == ["orders"]
    assert proxy.push(without) == []


def test_a_nacked_route_update_keeps_the_old_cluster(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    without = snapshot(mesh(service("orders", "127.0.0.1")))
    (rds,) = proxy.push(without)

    assert proxy.nack(rds, "bad route") == []
    # Envoy still routes with the old configuration, which sends to billing.
    assert routed_clusters(proxy.accepted[RDS]) == ["billing", "orders"]
    assert proxy.push(without) == []
    assert proxy.holds(CDS) == ["billing", "orders"]
    # Nor does an endpoint change of another service drop it.
    moved = snapshot(mesh(service("orders", "127.0.0.9")))
    replies = proxy.push(moved)
    assert shorts(replies) == ["EDS"]
    assert proxy.ack(replies[0]) == []
    assert proxy.holds(CDS) == ["billing", "orders"]
    assert proxy.holds(EDS) == ["billing", "orders"]


def test_an_endpoint_change_before_the_route_ack_keeps_the_old_cluster(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    (rds,) = proxy.push(snapshot(mesh(service("orders", "127.0.0.1"))))

    # Before Envoy ACKs the new routes, orders' endpoints move.
    replies = proxy.push(snapshot(mesh(service("orders", "127.0.0.9"))))
    assert shorts(replies) == ["EDS"], "the cluster the live routes use was dropped before the RDS ACK"
    assert proxy.ack(replies[0]) == []
    assert proxy.holds(CDS) == ["billing", "orders"]

    # The routes are in: now billing goes (Delta also removes its endpoints; SotW EDS cannot).
    replies = proxy.ack(rds)
    assert shorts(replies) == (["CDS", "EDS"] if protocol == "delta" else ["CDS"])
    cds = replies[0]
    assert proxy.ack(cds) == []
    assert proxy.holds(CDS) == ["orders"]


def test_a_route_change_that_keeps_every_cluster_diffs_no_cluster_or_endpoint(protocol: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cost follows the change: routes hold on to clusters (make-before-break), but a route change
    that keeps the same clusters must not make the stream compare every cluster and endpoint again
    (at the edge: thousands per label change, on every stream)."""
    from controlplane.server.subscriptions import SubscriptionStream

    proxy = Proxy(protocol)
    first = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    proxy.handshake(first)
    diffed: list[str] = []
    change = SubscriptionStream._change

    def counting(self: SubscriptionStream[object, object], type_url: TypeUrl, *args: object) -> object:
        diffed.append(type_url.short)
        return change(self, type_url, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(SubscriptionStream, "_change", counting)
    moved = snapshot(mesh(service("orders", "127.0.0.1", prefix="/orders.v2/"), service("billing", "127.0.0.2")), previous=first)
    assert moved.of(CDS) is first.of(CDS) and moved.of(EDS) is first.of(EDS)

    (rds,) = proxy.push(moved)
    assert rds.short == "RDS"
    assert proxy.ack(rds) == []
    assert "CDS" not in diffed and "EDS" not in diffed, diffed
    assert proxy.holds(CDS) == ["billing", "orders"]


def test_a_new_cluster_comes_before_the_routes_that_use_it(protocol: str) -> None:
    proxy = Proxy(protocol)
    proxy.handshake(snapshot(mesh(service("orders", "127.0.0.1"))))
    (cds,) = proxy.push(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    assert cds.short == "CDS" and "billing" in cds.names
    # Routes wait for the CDS answer and for billing's endpoints to be asked for.
    assert proxy.ack(cds) == []
    # Once it asked for billing's endpoints, they go, and then the routes.
    eds, rds = proxy.ack(proxy.answered[EDS], ("billing", "orders"))
    assert eds.short == "EDS" and "billing" in eds.names
    assert rds.short == "RDS" and routed_clusters(rds) == ["billing", "orders"]


@pytest.mark.parametrize("type_url", ORDER, ids=lambda t: t.short)
def test_every_type_in_order_is_served_by_the_same_machine(protocol: str, type_url: TypeUrl) -> None:
    # Generic over xds.types.ORDER: a type added there (SDS) needs no code of its own here.
    from google.protobuf import struct_pb2

    from controlplane.cache.snapshot import Snapshot, prepare

    def snap(value: str) -> Snapshot:
        message = struct_pb2.Struct(fields={"v": struct_pb2.Value(string_value=value)})
        return Snapshot(resources={type_url: {"a": prepare("a", type_url, message), "b": prepare("b", type_url, message)}})

    proxy = Proxy(protocol, ordered=False)
    proxy.snapshot = snap("one")
    (reply,) = proxy.ask(type_url, ("a",))
    assert reply.type == type_url and len(reply.message.resources) == 1  # a, not b
    assert proxy.ack(reply) == []
    (update,) = proxy.push(snap("two"))
    assert update.nonce != reply.nonce and proxy.record.status(type_url).sent_version == update.version
    assert proxy.nack(update, "no") == [] and proxy.record.status(type_url).nacks == 1
