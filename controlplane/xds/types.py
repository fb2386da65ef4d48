"""xDS resource types and the order ADS sends them in."""

from __future__ import annotations

from enum import StrEnum


class TypeUrl(StrEnum):
    """xDS resource types, in the order ADS sends them (CDS, EDS, SDS, LDS, RDS)."""

    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

    @property
    def short(self) -> str:
        return {"Cluster": "CDS", "ClusterLoadAssignment": "EDS", "Listener": "LDS", "RouteConfiguration": "RDS", "Secret": "SDS"}[
            self.value.rsplit(".", 1)[-1]
        ]


# Secrets go before listeners: a listener that names a secret warms until it has it, so a new
# certificate should already be there when the listener referring to it arrives.
ORDER: tuple[TypeUrl, ...] = (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.SECRET, TypeUrl.LISTENER, TypeUrl.ROUTE)
