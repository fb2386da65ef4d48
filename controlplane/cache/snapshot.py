"""Snapshots: resources packed once into Any, with content-hash versions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import any_pb2

from controlplane.xds import wire
from controlplane.translate.resources import Resources
from controlplane.xds.types import ORDER, TypeUrl
from controlplane.translate.route import referenced_clusters


@dataclass(frozen=True, slots=True)
class PreparedResource:
    """One resource, serialized once: every stream that sends it shares these bytes."""

    name: str
    packed: any_pb2.Any
    version: str  # content hash of the serialized resource
    # 64 bits of a hash of (name, version), computed once per resource version: a set's version is
    # the XOR of its members' digests, so adding or removing one resource updates it in O(1).
    digest: int
    # Route configuration: the clusters it sends traffic to. Cluster: the EDS resource it needs.
    references: frozenset[str] = frozenset()
    sotw_entry: bytes = b""  # this resource as an entry of DiscoveryResponse.resources, encoded once
    delta_entry: bytes = b""  # this resource as an entry of DeltaDiscoveryResponse.resources, encoded once


def prepare(name: str, type_url: TypeUrl, message: object) -> PreparedResource:
    # Deterministic serialization makes the version a pure function of the content, so versions
    # survive restarts and agree across replicas.
    payload = message.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
    packed = any_pb2.Any(type_url=type_url.value, value=payload)
    references: frozenset[str] = frozenset()
    if isinstance(message, route_pb2.RouteConfiguration):
        references = referenced_clusters(message)
    elif isinstance(message, cluster_pb2.Cluster) and message.type == cluster_pb2.Cluster.EDS:
        # An EDS cluster needs its ClusterLoadAssignment before it is warm.
        references = frozenset({message.eds_cluster_config.service_name or message.name})
    version = hashlib.sha256(payload).hexdigest()[:16]
    digest = resource_digest(name, version)
    any_bytes = wire.field(1, type_url.value.encode()) + wire.field(2, payload)
    # Resource{version=1, resource=2 (Any), name=3}
    resource_bytes = wire.field(1, version.encode()) + wire.field(2, any_bytes) + wire.field(3, name.encode())
    return PreparedResource(
        name=name,
        packed=packed,
        version=version,
        digest=digest,
        references=references,
        sotw_entry=wire.field(2, any_bytes),
        delta_entry=wire.field(2, resource_bytes),
    )


def resource_digest(name: str, version: str) -> int:
    """64 bits of a hash of one resource's name and version (see PreparedResource.digest)."""
    return int.from_bytes(hashlib.sha256(f"{name}\0{version}".encode()).digest()[:8], "big")


def set_version(digest: int) -> str:
    """The version string of a set of resources whose digests XOR to `digest`."""
    return f"{digest:016x}"


def version_of(resources: Iterable[PreparedResource]) -> str:
    """The version of a set of resources: order-free, a pure function of their names and versions."""
    digest = 0
    for resource in resources:
        digest ^= resource.digest
    return set_version(digest)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one role receives, by type and name."""

    resources: Mapping[TypeUrl, Mapping[str, PreparedResource]]
    _versions: dict[TypeUrl, str] = field(default_factory=dict, compare=False, repr=False)  # memo

    def of(self, type_url: TypeUrl) -> Mapping[str, PreparedResource]:
        return self.resources.get(type_url, _EMPTY)

    def version(self, type_url: TypeUrl) -> str:
        """The version of every resource of one type (computed once per snapshot)."""
        found = self._versions.get(type_url)
        if found is None:
            found = self._versions[type_url] = version_of(self.of(type_url).values())
        return found


_EMPTY: Mapping[str, PreparedResource] = MappingProxyType({})


class Interner:
    """Prepared resources by message identity, shared by every role's snapshot of one revision: a
    message object translated once (see translate.resources) is serialized once."""

    def __init__(self) -> None:
        # id() is only unique while the object lives: keep the message alongside.
        self._by_id: dict[int, tuple[object, TypeUrl, str, PreparedResource]] = {}

    def prepare(self, name: str, type_url: TypeUrl, message: object) -> PreparedResource:
        found = self._by_id.get(id(message))
        if found is not None and found[0] is message and found[1] is type_url and found[2] == name:
            return found[3]
        prepared = prepare(name, type_url, message)
        self._by_id[id(message)] = (message, type_url, name, prepared)
        return prepared

    def __len__(self) -> int:
        return len(self._by_id)


def build_snapshot(resources: Resources, previous: Snapshot | None = None, interner: Interner | None = None) -> Snapshot:
    """Pack every resource, reusing the previous snapshot's objects when the content is unchanged
    (each resource, each type's mapping, and the snapshot itself when nothing changed)."""
    prepared: dict[TypeUrl, Mapping[str, PreparedResource]] = {}
    pack = interner.prepare if interner is not None else prepare
    for type_url in ORDER:
        by_name: dict[str, PreparedResource] = {}
        old = previous.of(type_url) if previous else _EMPTY
        unchanged = True
        for name, message in sorted(resources.of(type_url).items()):
            fresh = pack(name, type_url, message)
            kept = old.get(name)
            if kept is not None and kept.version == fresh.version:
                by_name[name] = kept
            else:
                by_name[name], unchanged = fresh, False
        # An unchanged type keeps the previous mapping object: streams tell "nothing changed" by identity.
        prepared[type_url] = old if unchanged and len(old) == len(by_name) and previous is not None else by_name
    if previous is not None and all(prepared[type_url] is previous.of(type_url) for type_url in ORDER):
        return previous  # nothing changed for this role: the same snapshot, and nobody is woken
    return Snapshot(resources=prepared)
