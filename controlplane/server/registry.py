"""The registry of connected proxies: who is connected, what each was sent, ACKed and NACKed."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

from controlplane.xds.types import TypeUrl

if TYPE_CHECKING:
    from controlplane.cache.snapshot import PreparedResource


@dataclass
class Nack:
    version: str
    message: str
    at: float


@dataclass
class TypeStatus:
    """Per resource type of one stream."""

    sent_version: str | None = None
    sent_at: float | None = None
    acked_version: str | None = None
    acked_at: float | None = None
    responses_sent: int = 0
    nacks: int = 0
    last_nack: Nack | None = None
    resends: int = 0  # rejected resources offered again after the NACK backoff
    retry_at: float | None = None  # when rejected resources are next offered again
    resource_names: tuple[str, ...] = ()
    # What the proxy was last sent, by name (shared PreparedResource objects, not copies).
    resources: Mapping[str, PreparedResource] = field(default_factory=dict)

    def record_nack(self, version: str, message: str) -> Nack:
        """The proxy rejected `version`; it stays on its last ACKed one."""
        self.nacks += 1
        self.last_nack = Nack(version=version, message=message, at=time.time())
        return self.last_nack


@dataclass
class ProxyRecord:
    """One connected stream."""

    stream_id: int
    node_id: str
    node_cluster: str
    role: str
    peer: str
    connected_at: float
    user_agent: str = ""
    # The authenticated identity (SAN or token:NAME), "" when the server does not authenticate.
    identity: str = ""
    types: dict[TypeUrl, TypeStatus] = field(default_factory=dict)

    def status(self, type_url: TypeUrl) -> TypeStatus:
        found = self.types.get(type_url)
        if found is None:
            found = self.types[type_url] = TypeStatus()
        return found


class ProxyRegistry:
    """Connected proxies by stream. Written by the server, read by the admin API and tests."""

    def __init__(self) -> None:
        self._records: dict[int, ProxyRecord] = {}
        self._ids = itertools.count(1)

    def open(self, node_id: str, node_cluster: str, role: str, peer: str, user_agent: str = "", identity: str = "") -> ProxyRecord:
        record = ProxyRecord(
            stream_id=next(self._ids),
            node_id=node_id,
            node_cluster=node_cluster,
            role=role,
            peer=peer,
            connected_at=time.time(),
            user_agent=user_agent,
            identity=identity,
        )
        self._records[record.stream_id] = record
        return record

    def close(self, record: ProxyRecord) -> None:
        self._records.pop(record.stream_id, None)

    def proxies(self) -> list[ProxyRecord]:
        return sorted(self._records.values(), key=lambda r: (r.node_id, r.stream_id))

    def by_node(self, node_id: str) -> list[ProxyRecord]:
        return [record for record in self.proxies() if record.node_id == node_id]
