"""What the server tells the rest of the process about its streams (metrics, events)."""

from __future__ import annotations

from typing import Protocol

from controlplane.server.registry import ProxyRecord
from controlplane.xds.types import TypeUrl


class StreamObserver(Protocol):
    def connected(self, record: ProxyRecord) -> None: ...
    def disconnected(self, record: ProxyRecord) -> None: ...
    def pushed(self, record: ProxyRecord, type_url: TypeUrl, version: str, resources: int) -> None: ...
    def acked(self, record: ProxyRecord, type_url: TypeUrl, version: str, sent_at: float | None) -> None: ...
    def nacked(self, record: ProxyRecord, type_url: TypeUrl, version: str, message: str) -> None: ...
    def resent(self, record: ProxyRecord, type_url: TypeUrl, version: str) -> None: ...
    def refused(self, node_id: str, reason: str) -> None: ...


class NoObserver:
    """Observes nothing (the default, and what unit tests use)."""

    def connected(self, record: ProxyRecord) -> None:
        pass

    def disconnected(self, record: ProxyRecord) -> None:
        pass

    def pushed(self, record: ProxyRecord, type_url: TypeUrl, version: str, resources: int) -> None:
        pass

    def acked(self, record: ProxyRecord, type_url: TypeUrl, version: str, sent_at: float | None) -> None:
        pass

    def nacked(self, record: ProxyRecord, type_url: TypeUrl, version: str, message: str) -> None:
        pass

    def resent(self, record: ProxyRecord, type_url: TypeUrl, version: str) -> None:
        pass

    def refused(self, node_id: str, reason: str) -> None:
        pass
