"""The incremental (Delta) side of the xDS state machine (see subscriptions.py for the shared rules).

What Delta does its own way:
- subscriptions change by difference (subscribe / unsubscribe), and apply whatever the nonce;
  only the ACK or NACK of a stale nonce is ignored;
- a reconnecting client names the versions it already has (initial_resource_versions), and is
  sent nothing it has;
- a response carries only the resources whose version the client lacks, and the names of
  subscribed resources that are gone.
"""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.cache.snapshot import Snapshot
from controlplane.server.subscriptions import WILDCARD_TYPES, Change, SubscriptionStream, placeholder
from controlplane.xds.types import TypeUrl
from controlplane.xds.wire import DeltaResponse


class DeltaStream(SubscriptionStream[discovery_pb2.DeltaDiscoveryRequest, DeltaResponse]):
    """One Delta xDS stream."""

    mode = "delta"

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest, snapshot: Snapshot | None) -> list[DeltaResponse]:
        type_url = self._type_of(request.type_url)
        if type_url is None:
            return []
        sub = self.subscription(type_url)
        wildcard, names = sub.wildcard, set(sub.names)
        if not sub.requested:
            for name, version in request.initial_resource_versions.items():
                sub.hold(placeholder(name, version))
                sub.acked[name] = sub.held[name]
            # Legacy wildcard: a first request that names nothing.
            wildcard = type_url in WILDCARD_TYPES and not request.resource_names_subscribe
        for name in request.resource_names_subscribe:
            if name == "*":
                wildcard = True
            else:
                names.add(name)
        for name in request.resource_names_unsubscribe:
            if name == "*":
                wildcard = False
            else:
                names.discard(name)
        if request.response_nonce:
            error = request.error_detail.message if request.HasField("error_detail") else None
            self._answered(type_url, request.response_nonce, error)
        self._subscribe(type_url, wildcard, frozenset(names))
        return self.push(snapshot)

    def _removes(self, type_url: TypeUrl) -> bool:
        return True

    def _response(self, type_url: TypeUrl, nonce: str, version: str, change: Change) -> DeltaResponse:
        return DeltaResponse(
            system_version_info=version,
            type_url=type_url.value,
            nonce=nonce,
            encoded_resources=[resource.delta_entry for resource in change.changed.values()],
            removed_resources=change.removed,
        )
