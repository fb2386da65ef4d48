"""The incremental (Delta) xDS state machine of one stream. No I/O.

Per type the client tells us what it subscribes to and which versions it already has; we send
only resources whose version it lacks, and the names of subscribed resources that are gone.
Subscription changes apply whatever the nonce; ACK/NACK only for the latest nonce. A NACKed
resource version is not sent again. Ordering and make-before-break follow the SotW stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog
from envoy.service.discovery.v3 import discovery_pb2

from controlplane.cache.snapshot import PreparedResource, Snapshot, version_of
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.registry import ProxyRecord
from controlplane.xds.wire import DeltaResponse
from controlplane.xds.types import ORDER, TypeUrl

log = structlog.get_logger()

WILDCARD_TYPES = frozenset({TypeUrl.CLUSTER, TypeUrl.LISTENER})


@dataclass
class DeltaSubscription:
    requested: bool = False
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    have: dict[str, str] = field(default_factory=dict)  # name -> version the client has (or was sent)
    sent: dict[str, PreparedResource] = field(default_factory=dict)  # what we sent that it still has
    rejected: dict[str, str] = field(default_factory=dict)  # name -> version it NACKed
    nonce: str | None = None
    pending: dict[str, str] = field(default_factory=dict)  # resources in the unacknowledged response
    responded: bool = False
    acked_nonce: str | None = None


class DeltaStream:
    """One Delta xDS stream (ADS when `ordered`, a single type otherwise)."""

    def __init__(
        self, record: ProxyRecord, nonce_prefix: str = "", observer: StreamObserver | None = None, ordered: bool = True
    ) -> None:
        self.record = record
        self._observer: StreamObserver = observer or NoObserver()
        self._nonce_prefix = nonce_prefix
        self._ordered = ordered
        self._nonces = 0
        self._subs: dict[TypeUrl, DeltaSubscription] = {type_url: DeltaSubscription() for type_url in ORDER}
        self._log = log.bind(node_id=record.node_id, stream=record.stream_id, mode="delta")

    def subscription(self, type_url: TypeUrl) -> DeltaSubscription:
        return self._subs[type_url]

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest, snapshot: Snapshot | None) -> list[DeltaResponse]:
        try:
            type_url = TypeUrl(request.type_url)
        except ValueError:
            self._log.info("xds.unsupported_type", type_url=request.type_url)
            return []
        sub = self._subs[type_url]
        status = self.record.status(type_url)
        if not sub.requested:
            sub.requested = True
            sub.have.update(request.initial_resource_versions)
            if type_url in WILDCARD_TYPES and not request.resource_names_subscribe:
                sub.wildcard = True  # legacy wildcard: a first request naming nothing
        for name in request.resource_names_subscribe:
            if name == "*":
                sub.wildcard = True
            else:
                sub.names.add(name)
                sub.rejected.pop(name, None)
        for name in request.resource_names_unsubscribe:
            if name == "*":
                sub.wildcard = False
            else:
                sub.names.discard(name)
                sub.have.pop(name, None)
                sub.sent.pop(name, None)
        if request.response_nonce and request.response_nonce == sub.nonce:
            if request.HasField("error_detail"):
                sub.rejected.update(sub.pending)
                for name in sub.pending:
                    sub.have.pop(name, None)
                status.record_nack(request.response_nonce, request.error_detail.message)
                self._log.warning("xds.nack", type=type_url.short, rejected=sorted(sub.pending), error=request.error_detail.message)
                self._observer.nacked(self.record, type_url, status.sent_version or "", request.error_detail.message)
            else:
                status.acked_version, status.acked_at = status.sent_version, time.time()
                self._observer.acked(self.record, type_url, status.sent_version or "", status.sent_at)
            sub.pending = {}
            sub.acked_nonce = request.response_nonce
        status.resource_names = ("*",) if sub.wildcard else tuple(sorted(sub.names))
        return self.push(snapshot)

    def push(self, snapshot: Snapshot | None) -> list[DeltaResponse]:
        if snapshot is None:
            return []
        responses = []
        for type_url in ORDER:
            sub = self._subs[type_url]
            if not sub.requested:
                continue
            if self._ordered and type_url in (TypeUrl.LISTENER, TypeUrl.ROUTE) and not self._clusters_settled():
                continue
            response = self._diff(type_url, sub, snapshot)
            if response is not None:
                responses.append(response)
        return responses

    def _wanted(self, type_url: TypeUrl, sub: DeltaSubscription, snapshot: Snapshot) -> dict[str, PreparedResource]:
        available = snapshot.of(type_url)
        wanted = {name: r for name, r in available.items() if sub.wildcard or name in sub.names}
        if type_url in (TypeUrl.CLUSTER, TypeUrl.ENDPOINT):
            for name in self._retained_clusters(snapshot):
                if name in sub.sent and (sub.wildcard or name in sub.names):
                    wanted.setdefault(name, sub.sent[name])
        return wanted

    def _diff(self, type_url: TypeUrl, sub: DeltaSubscription, snapshot: Snapshot) -> DeltaResponse | None:
        wanted = self._wanted(type_url, sub, snapshot)
        changed = [
            r for name, r in sorted(wanted.items()) if sub.have.get(name) != r.version and sub.rejected.get(name) != r.version
        ]
        removed = sorted(name for name in sub.have if name not in wanted and (sub.wildcard or name in sub.names))
        if not changed and not removed and sub.responded:
            return None
        self._nonces += 1
        nonce = f"{self._nonce_prefix}{self._nonces}"
        for resource in changed:
            sub.have[resource.name] = resource.version
            sub.sent[resource.name] = resource
        for name in removed:
            sub.have.pop(name, None)
            sub.sent.pop(name, None)
        sub.pending = {r.name: r.version for r in changed}
        sub.nonce, sub.responded = nonce, True
        version = version_of(sub.sent.values())
        status = self.record.status(type_url)
        status.sent_version, status.sent_nonce, status.sent_at = version, nonce, time.time()
        status.resources = sub.sent  # the live map of what the client has: no copy per push
        status.responses_sent += 1
        self._log.info("xds.push", type=type_url.short, version=version, nonce=nonce, changed=len(changed), removed=len(removed))
        self._observer.pushed(self.record, type_url, version, len(changed))
        return DeltaResponse(
            system_version_info=version,
            type_url=type_url.value,
            nonce=nonce,
            encoded_resources=[r.delta_entry for r in changed],
            removed_resources=removed,
        )

    def _retained_clusters(self, snapshot: Snapshot) -> frozenset[str]:
        referenced: set[str] = set()
        for route in self._subs[TypeUrl.ROUTE].sent.values():
            referenced |= route.references
        current = snapshot.of(TypeUrl.CLUSTER)
        return frozenset(name for name in referenced if name not in current)

    def _clusters_settled(self) -> bool:
        cds = self._subs[TypeUrl.CLUSTER]
        if not cds.responded or cds.pending:
            return False
        eds = self._subs[TypeUrl.ENDPOINT]
        needed = set().union(*(cluster.references for cluster in cds.sent.values()))
        return (eds.wildcard or needed <= eds.names) and (not needed or eds.responded)
