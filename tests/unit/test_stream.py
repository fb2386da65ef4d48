"""The SotwStream state machine, without a network: requests and snapshots in, responses out."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.server.registry import ProxyRegistry
from controlplane.server.stream import SotwStream

from .xds import CDS, EDS, LDS, RDS, addresses, mesh, names, request, routed_clusters, service, snapshot, types


def _stream() -> SotwStream:
    record = ProxyRegistry().open(node_id="edge-1", node_cluster="edge", role="edge/127.0.0.1:10000", peer="ipv4:127.0.0.1:1")
    return SotwStream(record, nonce_prefix="t-")


class Handshake:
    """A stream walked through CDS -> EDS -> LDS -> RDS with ACKs, as Envoy does it."""

    def __init__(self, snap) -> None:  # type: ignore[no-untyped-def]
        self.stream = _stream()
        self.sent: dict[str, discovery_pb2.DiscoveryResponse] = {}
        (cds,) = self.stream.on_request(request(CDS), snap)
        self.sent["CDS"] = cds
        assert self.stream.on_request(request(LDS), snap) == []
        assert self.stream.on_request(request(CDS, ack=cds), snap) == []
        eds, lds = self.stream.on_request(request(EDS, tuple(names(cds))), snap)
        self.sent.update(EDS=eds, LDS=lds)
        assert self.stream.on_request(request(EDS, tuple(names(cds)), ack=eds), snap) == []
        assert self.stream.on_request(request(LDS, ack=lds), snap) == []
        (rds,) = self.stream.on_request(request(RDS, ("edge",)), snap)
        self.sent["RDS"] = rds
        assert self.stream.on_request(request(RDS, ("edge",), ack=rds), snap) == []

    def take(self, responses: list[discovery_pb2.DiscoveryResponse]) -> list[discovery_pb2.DiscoveryResponse]:
        for response in responses:
            self.sent[types([response])[0]] = response
        return responses


def test_first_wildcard_cds_request_gets_every_cluster() -> None:
    stream = _stream()
    snap = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))

    (response,) = stream.on_request(request(CDS), snap)

    assert types([response]) == ["CDS"]
    assert names(response) == ["billing", "orders"]
    assert response.version_info == snap.version(CDS)
    assert response.nonce == "t-1"
    assert stream.record.status(CDS).sent_version == snap.version(CDS)


def test_an_explicit_wildcard_cds_request_gets_every_cluster_too() -> None:
    snap = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (response,) = _stream().on_request(request(CDS, ("*",)), snap)
    assert names(response) == ["billing", "orders"]


def test_eds_answers_by_name() -> None:
    stream = _stream()
    snap = snapshot(mesh(service("orders", "127.0.0.1", "127.0.0.3"), service("billing", "127.0.0.2")))

    (response,) = stream.on_request(request(EDS, ("orders", "unknown")), snap)

    assert names(response) == ["orders"]
    assert addresses(response, "orders") == [("127.0.0.1", 50051), ("127.0.0.3", 50051)]
    assert stream.record.status(EDS).resource_names == ("orders", "unknown")


def test_lds_and_rds_wait_for_the_cds_ack_and_eds_subscription_to_every_cluster() -> None:
    stream = _stream()
    snap = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))

    (cds,) = stream.on_request(request(CDS), snap)
    assert stream.on_request(request(LDS), snap) == []
    assert stream.on_request(request(RDS, ("edge",)), snap) == []
    # EDS for one cluster only: still not settled.
    (eds,) = stream.on_request(request(EDS, ("orders",)), snap)
    assert names(eds) == ["orders"]
    # CDS ACKed, but billing's endpoints not yet asked for.
    assert stream.on_request(request(CDS, ack=cds), snap) == []

    responses = stream.on_request(request(EDS, ("billing", "orders"), ack=eds), snap)

    assert types(responses) == ["EDS", "LDS", "RDS"]
    assert names(responses[0]) == ["billing", "orders"]
    assert routed_clusters(responses[2]) == ["billing", "orders"]


def test_a_full_handshake_sends_each_type_once() -> None:
    snap = snapshot(mesh(service("orders", "127.0.0.1")))
    walk = Handshake(snap)
    assert {k: v.version_info for k, v in walk.sent.items()} == {t.short: snap.version(t) for t in (CDS, EDS, LDS, RDS)}
    record = walk.stream.record
    assert [record.status(t).acked_version for t in (CDS, EDS, LDS, RDS)] == [snap.version(t) for t in (CDS, EDS, LDS, RDS)]
    assert walk.stream.push(snap) == []


def test_a_stale_nonce_is_ignored() -> None:
    stream = _stream()
    first = snapshot(mesh(service("orders", "127.0.0.1")))
    second = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (old,) = stream.on_request(request(CDS), first)
    (new,) = stream.push(second)

    # An ACK and a NACK of the superseded response change nothing and get no answer.
    assert stream.on_request(request(CDS, ack=old), second) == []
    assert stream.on_request(request(CDS, ack=old, error="late complaint"), second) == []

    status = stream.record.status(CDS)
    assert status.acked_version is None
    assert status.nacks == 0 and status.last_nack is None
    assert status.sent_version == new.version_info == second.version(CDS)


def test_a_nack_is_recorded_and_the_rejected_version_is_not_resent() -> None:
    one = snapshot(mesh(service("orders", "127.0.0.1")))
    walk = Handshake(one)
    stream = walk.stream
    two = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))
    (rejected,) = walk.take(stream.push(two))
    assert types([rejected]) == ["CDS"]

    # Envoy NACKs with the version it keeps (the last one it accepted).
    nack = request(CDS, nonce=rejected.nonce, version=one.version(CDS), error="cluster 'billing': invalid connect_timeout")
    assert stream.on_request(nack, two) == []

    status = stream.record.status(CDS)
    assert status.nacks == 1
    assert status.last_nack is not None
    assert status.last_nack.message == "cluster 'billing': invalid connect_timeout"
    assert status.last_nack.version == two.version(CDS)
    assert status.last_nack.nonce == rejected.nonce
    assert status.acked_version == one.version(CDS)
    # Following requests of any type, and pushes of an identical snapshot (even one built anew), do not resend it.
    assert stream.on_request(request(EDS, ("orders",), ack=walk.sent["EDS"]), two) == []
    assert stream.on_request(request(LDS, ack=walk.sent["LDS"]), two) == []
    assert stream.push(two) == []
    assert stream.push(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))) == []
    assert status.responses_sent == 2

    # A changed config is sent.
    three = snapshot(mesh(service("orders", "127.0.0.7"), service("billing", "127.0.0.2")))
    responses = stream.push(three)
    assert types(responses) == ["EDS"]  # the clusters are unchanged (still rejected): only orders' endpoints moved
    assert addresses(responses[0], "orders") == [("127.0.0.7", 50051)]
    four = snapshot(mesh(service("orders", "127.0.0.7"), service("billing-v2", "127.0.0.9")))
    (cds,) = stream.push(four)
    assert types([cds]) == ["CDS"] and names(cds) == ["billing-v2", "orders"]
    assert cds.version_info == four.version(CDS)


def test_versions_are_content_hashes_equal_across_independent_snapshots() -> None:
    build = lambda: snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2")))  # noqa: E731
    one, two = build(), build()
    (a,) = _stream().on_request(request(CDS), one)
    # A restarted control plane: a new stream; Envoy reports the version it already has.
    (b,) = _stream().on_request(request(CDS, version=a.version_info), two)

    assert a.version_info == b.version_info
    assert [r.value for r in a.resources] == [r.value for r in b.resources]
    assert a.version_info not in ("", "0", "1")
    other = snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.3")))
    assert other.version(EDS) != one.version(EDS) and other.version(CDS) == one.version(CDS)


def test_an_endpoint_only_change_pushes_only_eds() -> None:
    walk = Handshake(snapshot(mesh(service("orders", "127.0.0.1"))))
    responses = walk.stream.push(snapshot(mesh(service("orders", "127.0.0.1", "127.0.0.5"))))
    assert types(responses) == ["EDS"]
    assert addresses(responses[0], "orders") == [("127.0.0.1", 50051), ("127.0.0.5", 50051)]


def test_make_before_break_when_a_service_is_removed() -> None:
    walk = Handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    stream = walk.stream
    without = snapshot(mesh(service("orders", "127.0.0.1")))

    # The routes go first; CDS keeps billing while Envoy's routes may still send to it.
    (rds,) = walk.take(stream.push(without))
    assert types([rds]) == ["RDS"] and routed_clusters(rds) == ["orders"]
    # Anything happening before the RDS ACK must not drop the cluster either.
    assert stream.push(without) == []
    assert stream.on_request(request(LDS, ack=walk.sent["LDS"]), without) == []
    assert stream.record.status(CDS).sent_version == walk.sent["CDS"].version_info

    # Once the routes are in, the cluster goes.
    responses = walk.take(stream.on_request(request(RDS, ("edge",), ack=rds), without))
    # EDS follows without billing's retained assignment (a SotW EDS omission deletes nothing).
    assert types(responses) == ["CDS", "EDS"] and names(responses[1]) == ["orders"]
    cds = responses[0]
    assert names(cds) == ["orders"]
    assert cds.version_info == without.version(CDS)
    assert stream.on_request(request(CDS, ack=cds), without) == []
    # Envoy narrows its EDS subscription: a changed subscription is answered, with orders only.
    (eds,) = stream.on_request(request(EDS, ("orders",), ack=walk.sent["EDS"]), without)
    assert names(eds) == ["orders"]
    assert stream.push(without) == []


def test_a_nacked_route_update_keeps_the_old_cluster() -> None:
    walk = Handshake(snapshot(mesh(service("orders", "127.0.0.1"), service("billing", "127.0.0.2"))))
    stream = walk.stream
    without = snapshot(mesh(service("orders", "127.0.0.1")))
    (rds,) = stream.push(without)

    assert stream.on_request(request(RDS, ("edge",), nonce=rds.nonce, version=walk.sent["RDS"].version_info, error="bad route"), without) == []
    # Envoy still routes with the old configuration, which sends to billing.
    assert stream.push(without) == []
    assert stream.record.status(CDS).sent_version == walk.sent["CDS"].version_info
