"""The state-of-the-world side of the xDS state machine (see subscriptions.py for the shared rules).

What SotW does its own way:
- a request whose nonce is stale is ignored as a whole, subscription included;
- each request carries the whole subscription of its type; CDS and LDS may be wildcard;
- a CDS or LDS response carries every resource of the type (an omission is a removal); an EDS or
  RDS response carries only the named resources that changed (the protocol allows it: an omission
  changes nothing) and cannot remove any (the proxy drops what it unsubscribes from);
- the response version is that of the whole set the proxy holds.
"""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from controlplane.cache.snapshot import Snapshot
from controlplane.server.subscriptions import WILDCARD_TYPES, Change, SubscriptionStream
from controlplane.xds.types import TypeUrl
from controlplane.xds.wire import SotwResponse


_ANY = frozenset({"*"})


class SotwStream(SubscriptionStream[discovery_pb2.DiscoveryRequest, SotwResponse]):
    """One state-of-the-world xDS stream."""

    mode = "sotw"

    def on_request(self, request: discovery_pb2.DiscoveryRequest, snapshot: Snapshot | None) -> list[SotwResponse]:
        type_url = self._type_of(request.type_url)
        if type_url is None:
            return []
        error = request.error_detail.message if request.HasField("error_detail") else None
        if request.response_nonce and not self._answered(type_url, request.response_nonce, error):
            return []  # stale: superseded by a response the proxy has not seen yet
        names = frozenset(request.resource_names)
        wildcard = type_url in WILDCARD_TYPES and (not names or "*" in names)
        self._subscribe(type_url, wildcard, names - _ANY if "*" in names else names)
        return self.push(snapshot)

    def _removes(self, type_url: TypeUrl) -> bool:
        return type_url in WILDCARD_TYPES

    def _response(self, type_url: TypeUrl, nonce: str, version: str, change: Change) -> SotwResponse:
        return SotwResponse(
            version_info=version,
            type_url=type_url.value,
            nonce=nonce,
            encoded_resources=[resource.sotw_entry for resource in (change.desired if type_url in WILDCARD_TYPES else change.changed).values()],
        )
