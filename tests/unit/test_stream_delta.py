"""What only the Delta xDS state machine does: subscriptions by difference, resource-level
versions, removals, reconnects with initial_resource_versions."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from .xds import CDS, EDS, LDS, RDS, Proxy, Reply, mesh, service, shorts, snapshot


def test_subscribe_and_unsubscribe_send_only_what_the_client_lacks() -> None:
    proxy = Proxy("delta")
    proxy.snapshot = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    (a,) = proxy.ask(EDS, ("a",))
    assert a.names == ["a"]
    (b,) = proxy.ack(a, ("a", "b"))
    assert b.names == ["b"], "a was sent again although the client has it"
    assert proxy.ack(b, ("b",)) == []  # unsubscribing needs no answer
    assert proxy.holds(EDS) == ["b"]
    # a's endpoints change: unsubscribed, so nothing; b's change: only b.
    assert proxy.push(snapshot(mesh(service("a", "127.0.0.9"), service("b", "127.0.0.2")))) == []
    (update,) = proxy.push(snapshot(mesh(service("a", "127.0.0.9"), service("b", "127.0.0.3"))))
    assert update.names == ["b"] and not update.removed
    # Subscribing again to a gets its current version.
    (again,) = proxy.ack(update, ("a", "b"))
    assert again.names == ["a"]
    assert proxy.record.status(EDS).resource_names == ("a", "b")


def test_a_removed_service_is_named_in_removed_resources_after_the_routes_moved() -> None:
    proxy = Proxy("delta")
    proxy.handshake(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"))))
    (rds,) = proxy.push(snapshot(mesh(service("b", "127.0.0.2"))))
    cds, eds = proxy.ack(rds)
    assert (cds.short, cds.names, cds.removed) == ("CDS", [], ["a"])
    assert (eds.short, eds.names, eds.removed) == ("EDS", [], ["a"])
    assert proxy.ack(cds) == [] and proxy.ack(eds) == []
    assert proxy.holds(CDS) == ["b"] and proxy.holds(EDS) == ["b"]
    assert proxy.record.status(CDS).sent_version == proxy.snapshot.version(CDS)  # type: ignore[union-attr]


def test_a_nack_rejects_only_the_resources_of_that_response_and_recovers() -> None:
    proxy = Proxy("delta")
    proxy.handshake(snapshot(mesh(service("a", "127.0.0.1"))))
    (rejected,) = proxy.push(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"))))
    assert rejected.names == ["b"]
    (routes,) = proxy.nack(rejected, "cluster b: bad")
    assert routes.short == "RDS"
    assert proxy.ack(routes) == []
    assert proxy.record.status(CDS).last_nack.message == "cluster b: bad"  # type: ignore[union-attr]
    # Another cluster changes: only it is sent, not b again.
    (c,) = proxy.push(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"), service("c", "127.0.0.3"))))
    assert c.names == ["c"]
    assert proxy.ack(c) == []
    # The backoff is over: b alone is offered again, counted as a resend.
    replies = proxy.after(10)
    assert [(r.short, r.names) for r in replies] == [("CDS", ["b"])]
    assert proxy.record.status(CDS).resends == 1
    proxy.ack(replies[0])
    assert proxy.holds(CDS) == ["a", "b", "c"]


def test_a_reconnecting_client_is_sent_only_what_changed_while_it_was_away() -> None:
    before = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"), service("gone", "127.0.0.4")))
    first = Proxy("delta")
    first.snapshot = before
    (cds,) = first.ask(CDS)
    had = cds.resource_versions

    after = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2", prefix="/x/"), service("new", "127.0.0.5")))
    second = Proxy("delta")
    second.snapshot = after
    request = discovery_pb2.DeltaDiscoveryRequest(type_url=CDS.value)
    request.initial_resource_versions.update(had)
    (resumed,) = [Reply(r.to_bytes(), delta=True) for r in second.stream.on_request(request, after)]
    assert resumed.names == ["new"] and resumed.removed == ["gone"]
    assert second.record.status(CDS).sent_version == after.version(CDS)
    # Unchanged: the first answer of a type still goes (the client waits for it), empty.
    third = Proxy("delta")
    request = discovery_pb2.DeltaDiscoveryRequest(type_url=CDS.value)
    request.initial_resource_versions.update(had)
    (empty,) = [Reply(r.to_bytes(), delta=True) for r in third.stream.on_request(request, before)]
    assert empty.names == [] and empty.removed == []
    assert third.stream.push(before) == []


def test_subscription_changes_apply_even_with_a_stale_nonce() -> None:
    proxy = Proxy("delta")
    proxy.snapshot = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    (first,) = proxy.ask(EDS, ("a",))
    proxy.push(snapshot(mesh(service("a", "127.0.0.9"), service("b", "127.0.0.2"))))  # supersedes `first`
    request = discovery_pb2.DeltaDiscoveryRequest(type_url=EDS.value, response_nonce=first.nonce, resource_names_subscribe=["b"])
    replies = [Reply(r.to_bytes(), delta=True) for r in proxy.stream.on_request(request, proxy.snapshot)]
    assert [r.names for r in replies] == [["b"]]
    assert proxy.record.status(EDS).acked_version is None  # the stale ACK counted for nothing


def test_unsubscribing_the_wildcard_keeps_named_resources_only() -> None:
    proxy = Proxy("delta")
    proxy.snapshot = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    (cds,) = proxy.ask(CDS)
    assert cds.names == ["a", "b"]
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=CDS.value, response_nonce=cds.nonce, resource_names_subscribe=["a"], resource_names_unsubscribe=["*"]
    )
    assert proxy.stream.on_request(request, proxy.snapshot) == []
    assert proxy.record.status(CDS).resource_names == ("a",)
    # b goes and b2 comes: neither is subscribed, no CDS is sent.
    replies = proxy.push(snapshot(mesh(service("a", "127.0.0.1"), service("b2", "127.0.0.2"))))
    assert all(r.short != "CDS" for r in replies)


def test_lds_and_rds_are_answered_in_order_on_ads() -> None:
    proxy = Proxy("delta")
    sent = proxy.handshake(snapshot(mesh(service("a", "127.0.0.1"))))
    assert shorts(list(sent.values())) == ["CDS", "EDS", "LDS", "RDS"]
    assert proxy.holds(LDS) == ["edge"] and proxy.holds(RDS) == ["edge"]
