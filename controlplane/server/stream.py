"""The state-of-the-world xDS state machine of one stream. No I/O: requests and snapshots in,
responses out, so the protocol rules can be tested without a network.

Rules (from the xDS protocol and other control planes' bug trackers):
- a request whose nonce is not the latest we sent for its type is stale and ignored;
- a request with error_detail is a NACK: recorded, and the rejected version is not sent again
  (the proxy stays on its last ACKed version until the config changes);
- CDS and LDS are answered with every resource (wildcard), EDS and RDS by name;
- pushes go CDS, EDS, LDS, RDS; LDS and RDS wait until the proxy has ACKed the clusters and
  subscribed to their endpoints, and a removed cluster is kept until no route sent to the proxy
  refers to it any more (make-before-break).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import structlog
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.cache.snapshot import PreparedResource, Snapshot, version_of
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.registry import ProxyRecord
from controlplane.xds.wire import SotwResponse
from controlplane.xds.types import ORDER, TypeUrl

log = structlog.get_logger()

WILDCARD_TYPES = frozenset({TypeUrl.CLUSTER, TypeUrl.LISTENER})


@dataclass
class Subscription:
    """What the proxy asked for, and what we last sent it, for one type."""

    requested: bool = False
    wildcard: bool = True
    names: frozenset[str] = frozenset()
    nonce: str | None = None
    sent_version: str | None = None
    sent: Mapping[str, PreparedResource] = field(default_factory=dict)
    acked: Mapping[str, PreparedResource] = field(default_factory=dict)  # what the proxy last accepted
    acked_version: str | None = None
    nacked_version: str | None = None
    resend: bool = False  # answer the next request even if nothing changed


class SotwStream:
    """One ADS state-of-the-world stream."""

    def __init__(
        self, record: ProxyRecord, nonce_prefix: str = "", observer: StreamObserver | None = None, ordered: bool = True
    ) -> None:
        self.record = record
        # On ADS we order types; a single-type stream (CDS, EDS, LDS or RDS service) cannot wait for others.
        self._ordered = ordered
        self._observer: StreamObserver = observer or NoObserver()
        self._nonce_prefix = nonce_prefix
        self._nonces = 0
        self._subs: dict[TypeUrl, Subscription] = {type_url: Subscription() for type_url in ORDER}
        self._log = log.bind(node_id=record.node_id, stream=record.stream_id)

    def subscription(self, type_url: TypeUrl) -> Subscription:
        return self._subs[type_url]

    # -- inputs ---------------------------------------------------------------------------

    def on_request(
        self, request: discovery_pb2.DiscoveryRequest, snapshot: Snapshot | None
    ) -> list[SotwResponse]:
        try:
            type_url = TypeUrl(request.type_url)
        except ValueError:
            self._log.info("xds.unsupported_type", type_url=request.type_url)
            return []
        sub = self._subs[type_url]
        status = self.record.status(type_url)
        if request.response_nonce and request.response_nonce != sub.nonce:
            self._log.debug("xds.stale_nonce", type=type_url.short, nonce=request.response_nonce, latest=sub.nonce)
            return []
        if request.response_nonce and request.HasField("error_detail"):
            sub.nacked_version = sub.sent_version
            status.record_nack(request.response_nonce, request.error_detail.message)
            self._log.warning(
                "xds.nack",
                type=type_url.short,
                rejected_version=sub.sent_version,
                current_version=request.version_info,
                error=request.error_detail.message,
            )
            self._observer.nacked(self.record, type_url, sub.sent_version or "", request.error_detail.message)
        elif request.response_nonce:
            newly_acked = sub.acked_version != request.version_info
            sub.acked_version = request.version_info
            sub.acked = sub.sent
            status.acked_version = request.version_info
            status.acked_at = time.time()
            if newly_acked:
                self._observer.acked(self.record, type_url, request.version_info, status.sent_at)
            self._log.debug("xds.ack", type=type_url.short, version=request.version_info)

        names = frozenset(name for name in request.resource_names if name != "*")
        wildcard = type_url in WILDCARD_TYPES and (not request.resource_names or "*" in request.resource_names)
        if not sub.requested or names != sub.names or wildcard != sub.wildcard:
            sub.resend = True
        sub.requested, sub.names, sub.wildcard = True, names, wildcard
        status.resource_names = tuple(sorted(names)) if not wildcard else ("*",)
        return self.push(snapshot)

    def push(self, snapshot: Snapshot | None) -> list[SotwResponse]:
        """Every response the proxy needs to reach `snapshot`, in CDS, EDS, LDS, RDS order."""
        if snapshot is None:
            return []
        responses = []
        for type_url in ORDER:
            sub = self._subs[type_url]
            if not sub.requested:
                continue
            if type_url not in WILDCARD_TYPES and not sub.names:
                # EDS/RDS with no names: the proxy unsubscribed from everything; nothing to answer.
                continue
            if self._ordered and type_url in (TypeUrl.LISTENER, TypeUrl.ROUTE) and not self._clusters_settled():
                continue
            desired = self._desired(type_url, snapshot)
            version = version_of(desired.values())
            if version == sub.sent_version and not sub.resend:
                continue
            if version == sub.nacked_version and version == sub.sent_version:
                # The proxy rejected exactly this; sending it again would only loop.
                sub.resend = False
                continue
            responses.append(self._respond(type_url, sub, desired, version))
        return responses

    # -- internals ------------------------------------------------------------------------

    def _desired(self, type_url: TypeUrl, snapshot: Snapshot) -> dict[str, PreparedResource]:
        sub = self._subs[type_url]
        available = snapshot.of(type_url)
        if sub.wildcard and type_url in WILDCARD_TYPES:
            desired = dict(available)
        else:
            desired = {name: available[name] for name in sorted(sub.names) if name in available}
        retained = self._retained_clusters(snapshot)
        if type_url is TypeUrl.CLUSTER:
            for name in retained:
                desired.setdefault(name, self._subs[TypeUrl.CLUSTER].sent[name])
        elif type_url is TypeUrl.ENDPOINT:
            for name in retained & sub.names:
                if name in sub.sent:
                    desired.setdefault(name, sub.sent[name])
        return desired

    def _retained_clusters(self, snapshot: Snapshot) -> frozenset[str]:
        """Clusters gone from the snapshot that routes the proxy still has refer to.

        Until the proxy ACKs new routes it routes with the ones it last accepted (and keeps them
        after a NACK), so both the routes sent and the routes ACKed hold on to their clusters.
        """
        routes = self._subs[TypeUrl.ROUTE]
        referenced: set[str] = set()
        for route in (*routes.sent.values(), *routes.acked.values()):
            referenced |= route.references
        sent_clusters = self._subs[TypeUrl.CLUSTER].sent
        current = snapshot.of(TypeUrl.CLUSTER)
        return frozenset(name for name in referenced if name in sent_clusters and name not in current)

    def _clusters_settled(self) -> bool:
        """The proxy has taken our last CDS and asked for the endpoints of its clusters."""
        cds = self._subs[TypeUrl.CLUSTER]
        if cds.sent_version is None:
            return False
        if cds.sent_version not in (cds.acked_version, cds.nacked_version):
            return False
        eds = self._subs[TypeUrl.ENDPOINT]
        needed = set().union(*(cluster.references for cluster in cds.sent.values()))
        return needed <= eds.names and (not needed or eds.sent_version is not None)

    def _respond(
        self, type_url: TypeUrl, sub: Subscription, desired: dict[str, PreparedResource], version: str
    ) -> SotwResponse:
        self._nonces += 1
        nonce = f"{self._nonce_prefix}{self._nonces}"
        sub.nonce, sub.sent_version, sub.sent, sub.resend = nonce, version, desired, False
        status = self.record.status(type_url)
        status.sent_version, status.sent_nonce, status.sent_at = version, nonce, time.time()
        status.resources = desired
        status.responses_sent += 1
        self._log.info("xds.push", type=type_url.short, version=version, nonce=nonce, resources=len(desired))
        self._observer.pushed(self.record, type_url, version, len(desired))
        return SotwResponse(
            version_info=version,
            type_url=type_url.value,
            nonce=nonce,
            encoded_resources=[resource.sotw_entry for resource in desired.values()],
            packed=[resource.packed for resource in desired.values()],
        )
