"""xDS resource types and the order ADS sends them in."""

from __future__ import annotations

from enum import StrEnum


class TypeUrl(StrEnum):
    """xDS resource types, in the order ADS sends them (CDS, EDS, LDS, RDS)."""

    CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
    ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

    @property
    def short(self) -> str:
        return {"Cluster": "CDS", "ClusterLoadAssignment": "EDS", "Listener": "LDS", "RouteConfiguration": "RDS"}[
            self.value.rsplit(".", 1)[-1]
        ]


ORDER: tuple[TypeUrl, ...] = (TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE)
