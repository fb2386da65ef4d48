"""What only the state-of-the-world xDS state machine does: whole subscriptions per request,
stale requests ignored as a whole, full sets for CDS and LDS."""

from __future__ import annotations

from .xds import EDS, Proxy, mesh, request, service, snapshot


def test_a_request_with_a_stale_nonce_is_ignored_subscription_included() -> None:
    proxy = Proxy("sotw")
    proxy.snapshot = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    (first,) = proxy.ask(EDS, ("a",))
    proxy.push(snapshot(mesh(service("a", "127.0.0.9"), service("b", "127.0.0.2"))))  # supersedes `first`
    stale = request(EDS, ("a", "b"), ack=first.message)  # type: ignore[arg-type]
    assert proxy.stream.on_request(stale, proxy.snapshot) == []
    assert proxy.record.status(EDS).resource_names == ("a",)


def test_a_cds_response_carries_every_cluster_even_when_one_changed() -> None:
    proxy = Proxy("sotw")
    proxy.handshake(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"))))
    (cds,) = proxy.push(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"), service("c", "127.0.0.3"))))
    assert cds.names == ["a", "b", "c"]


def test_eds_and_rds_responses_carry_only_the_named_resources_that_changed() -> None:
    proxy = Proxy("sotw")
    proxy.handshake(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2"), service("c", "127.0.0.3"))))
    (eds,) = proxy.push(snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.9"), service("c", "127.0.0.3"))))
    assert eds.names == ["b"]
    assert eds.version == proxy.snapshot.version(EDS)  # type: ignore[union-attr]  # the version of all it holds
    assert proxy.ack(eds) == []
    assert proxy.holds(EDS) == ["a", "b", "c"]


def test_an_eds_subscription_change_sends_only_the_new_names_and_cannot_remove() -> None:
    proxy = Proxy("sotw")
    proxy.snapshot = snapshot(mesh(service("a", "127.0.0.1"), service("b", "127.0.0.2")))
    (eds,) = proxy.ask(EDS, ("a",))
    (added,) = proxy.ack(eds, ("a", "b"))
    assert added.names == ["b"] and added.removed == []
    assert proxy.ack(added, ("a",)) == []  # narrowing needs no answer
    assert proxy.record.status(EDS).resource_names == ("a",)
    assert proxy.holds(EDS) == ["a"]
    # Subscribed to nothing: nothing to answer; asking again for b sends it again.
    assert proxy.ack(added, ()) == []
    (again,) = proxy.ask(EDS, ("b",))
    assert again.names == ["b"]
