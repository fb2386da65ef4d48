"""Snapshots: resources packed once into Any, with content-hash versions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

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


def prepare(name: str, type_url: TypeUrl, message: object, references: frozenset[str] | None = None) -> PreparedResource:
    # Deterministic serialization makes the version a pure function of the content, so versions
    # survive restarts and agree across replicas.
    payload = message.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
    packed = any_pb2.Any(type_url=type_url.value, value=payload)
    if references is not None:
        pass  # what the route configuration references, as translation built it (Resources.references)
    elif isinstance(message, route_pb2.RouteConfiguration):
        references = referenced_clusters(message)
    elif isinstance(message, cluster_pb2.Cluster) and message.type == cluster_pb2.Cluster.EDS:
        # An EDS cluster needs its ClusterLoadAssignment before it is warm.
        references = frozenset({message.eds_cluster_config.service_name or message.name})
    else:
        references = frozenset()
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
    # For a snapshot made from another by replacing some resources (`replacing`): per type, the
    # mapping it replaced and the names that differ from it, so that a stream that saw that mapping
    # looks at those names only. Empty for a snapshot built in full.
    patched: Mapping[TypeUrl, tuple[Mapping[str, PreparedResource], frozenset[str]]] = field(default_factory=dict, compare=False, repr=False)
    _versions: dict[TypeUrl, str] = field(default_factory=dict, compare=False, repr=False)  # memo

    def of(self, type_url: TypeUrl) -> Mapping[str, PreparedResource]:
        return self.resources.get(type_url, _EMPTY)

    def version(self, type_url: TypeUrl) -> str:
        """The version of every resource of one type (computed once per snapshot)."""
        found = self._versions.get(type_url)
        if found is None:
            found = self._versions[type_url] = version_of(self.of(type_url).values())
        return found

    def replacing(self, type_url: TypeUrl, resources: Mapping[str, PreparedResource]) -> tuple[Snapshot, dict[str, PreparedResource]]:
        """This snapshot with some resources of one type (ones it has) replaced, and the resources
        replaced (by name); itself when every one has the version it had. The other types' mappings
        are the same objects, so streams see by identity that nothing else changed."""
        snapshot, replaced = self.replacing_types({type_url: resources})
        return snapshot, replaced.get(type_url, {})

    def replacing_types(
        self, by_type: Mapping[TypeUrl, Mapping[str, PreparedResource]]
    ) -> tuple[Snapshot, dict[TypeUrl, dict[str, PreparedResource]]]:
        """As `replacing`, for several types at once."""
        resources = dict(self.resources)
        patched = {}
        replaced_by_type = {}
        for type_url, fresh in by_type.items():
            old = self.of(type_url)
            replaced = {name: was for name, resource in fresh.items() if (was := old.get(name)) is not None and was.version != resource.version}
            if not replaced:
                continue
            mapping = dict(old)
            for name in replaced:
                mapping[name] = fresh[name]
            resources[type_url] = mapping
            patched[type_url] = (old, frozenset(replaced))
            replaced_by_type[type_url] = replaced
        if not patched:
            return self, {}
        return Snapshot(resources=resources, patched=patched), replaced_by_type

    def all(self) -> Iterator[PreparedResource]:
        for mapping in self.resources.values():
            yield from mapping.values()


_EMPTY: Mapping[str, PreparedResource] = MappingProxyType({})
# The bytes one interned resource keeps (its payload three times: the Any, the SotW and the Delta
# entries) beyond the payload, estimated: the objects and the message identity record.
INTERNED_OVERHEAD_BYTES = 512
# Beyond this many bytes, resources are prepared but not shared (each snapshot serializes its own).
DEFAULT_INTERNER_MAX_BYTES = 1024 * 1024 * 1024


class _Interned:
    __slots__ = ("message", "type_url", "prepared", "holders", "size")

    def __init__(self, message: object, type_url: TypeUrl, prepared: PreparedResource) -> None:
        self.message, self.type_url, self.prepared, self.holders = message, type_url, prepared, 0
        self.size = len(prepared.packed.value) + len(prepared.sotw_entry) + len(prepared.delta_entry) + INTERNED_OVERHEAD_BYTES


class Interner:
    """Prepared resources by message identity, shared by every role's snapshot: a message object
    translated once (see translate.memo) is serialized once.

    A prepared resource is kept while a snapshot holds it: the cache tells the interner which
    resources its snapshots take up (`hold`) and let go of (`let_go`), and `settle` drops those
    nobody holds, so a superseded resource and its bytes go with the last snapshot that had them
    (streams that have not moved on yet keep their own reference), and what the interner holds
    follows the live roles, not the number of changes."""

    def __init__(self, max_bytes: int = DEFAULT_INTERNER_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        # id() is only unique while the object lives: each entry keeps its message and resource.
        self._by_message: dict[int, _Interned] = {}
        self._by_prepared: dict[int, _Interned] = {}
        self._unheld: list[_Interned] = []
        self._bytes = 0

    def prepare(self, name: str, type_url: TypeUrl, message: object, references: frozenset[str] | None = None) -> PreparedResource:
        found = self._by_message.get(id(message))
        if found is not None and found.message is message and found.type_url is type_url and found.prepared.name == name:
            return found.prepared
        prepared = prepare(name, type_url, message, references)
        entry = _Interned(message, type_url, prepared)
        if found is None and self._bytes + entry.size <= self.max_bytes:
            self._by_message[id(message)] = self._by_prepared[id(prepared)] = entry
            self._bytes += entry.size
            self._unheld.append(entry)
        return prepared

    def hold(self, resources: Iterable[PreparedResource]) -> None:
        for resource in resources:
            entry = self._by_prepared.get(id(resource))
            if entry is not None:
                entry.holders += 1

    def let_go(self, resources: Iterable[PreparedResource]) -> None:
        for resource in resources:
            entry = self._by_prepared.get(id(resource))
            if entry is not None:
                entry.holders -= 1
                if entry.holders <= 0:
                    self._unheld.append(entry)

    def settle(self) -> None:
        """Drop the resources no snapshot holds."""
        for entry in self._unheld:
            if entry.holders <= 0 and self._by_prepared.get(id(entry.prepared)) is entry:
                del self._by_prepared[id(entry.prepared)]
                del self._by_message[id(entry.message)]
                self._bytes -= entry.size
        self._unheld.clear()

    def size_bytes(self) -> int:
        """Estimated bytes held (the controlplane_cache_interned_bytes metric)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._by_prepared)


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
            fresh = pack(name, type_url, message, resources.references.get(name) if type_url is TypeUrl.ROUTE else None)
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
