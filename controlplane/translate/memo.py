"""Memoised translation: messages built once and shared by every role and every mesh revision
whose input is unchanged, bounded in bytes.

Sharing matters beyond the CPU saved: the cache serializes a message object once (see
cache.snapshot.Interner), so an unchanged service keeps its bytes and its version across revisions.
Keys hold only what a message is built from: a Cluster or a Route is keyed on the service's
settings (`TranslationMemo.settings_key`, every field but its endpoints), so an endpoint change re-creates only
that service's ClusterLoadAssignment. Callers must never mutate what the memo returns (copy first).
"""

from __future__ import annotations

import dataclasses
import operator
import sys
from collections import OrderedDict
from typing import Callable, Hashable, TypeVar

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh, Service

T = TypeVar("T")

# The memory a memoised message holds, estimated from its serialized size: Python protobuf (upb)
# messages take about 6.5 times their serialized size in memory (ClusterLoadAssignments, whose
# endpoint metadata are maps, dominate), plus about 2 KiB per entry (small messages, the key, the
# record). Calibrated against RSS, see docs/benchmarks.md ("Translation memo").
IN_MEMORY_PER_SERIALIZED_BYTE = 7
ENTRY_OVERHEAD_BYTES = 2048
# The two keys of one service of the current mesh (the tuples; their parts belong to the mesh).
SERVICE_KEYS_BYTES = 400
# One memo per process (the snapshot cache holds it). It must hold at least one revision's
# messages for every role (about 60 MB at 10,000 tasks, 1,000 services, 2,000 roles), or each
# revision would evict what it is about to need.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


# Every field of a Service but its endpoints, whatever fields the model adds later.
_settings_of = operator.attrgetter(*(f.name for f in dataclasses.fields(Service) if f.name != "endpoints"))


class Key:
    """A key built from deep frozen dataclasses, hashed once: the memo's OrderedDict hashes a key
    on every lookup, and hashing a Service walks its whole traffic policy."""

    __slots__ = ("parts", "hash")

    def __init__(self, parts: tuple[object, ...]) -> None:
        self.parts, self.hash = parts, hash(parts)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Key) and self.hash == other.hash and self.parts == other.parts)


class _Slot:
    """(kind, key), hashed once."""

    __slots__ = ("kind", "key", "hash")

    def __init__(self, kind: str, key: Hashable) -> None:
        self.kind, self.key, self.hash = kind, key, hash((kind, key))

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other: object) -> bool:
        return self is other or (
            isinstance(other, _Slot) and self.hash == other.hash and self.kind == other.kind and self.key == other.key
        )


class _Entry:
    __slots__ = ("value", "size", "generation")

    def __init__(self, value: object, size: int, generation: int) -> None:
        self.value, self.size, self.generation = value, size, generation


def estimated_bytes(value: object) -> int:
    """What keeping `value` in the memo costs, in bytes of memory (an estimate, see above)."""
    if isinstance(value, Message):
        return value.ByteSize() * IN_MEMORY_PER_SERIALIZED_BYTE + ENTRY_OVERHEAD_BYTES
    return sys.getsizeof(value) + ENTRY_OVERHEAD_BYTES


class TranslationMemo:
    """Messages by (kind, key) for the current and the previous mesh, at most `max_bytes` of them
    (least recently used go first); `max_bytes=0` memoises nothing.

    A message no role used while translating the previous mesh has been superseded (an old endpoint
    set, a changed service): it is dropped when the next mesh arrives, so what the memo holds
    follows the mesh, not the number of changes.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: expected 0 (off) or more")
        self.max_bytes = max_bytes
        # Least recently used first.
        self._entries: OrderedDict[_Slot, _Entry] = OrderedDict()
        self._bytes = 0
        self._mesh: Mesh | None = None
        self._generation = 0
        self._by_mesh: dict[str, tuple[Mesh, object, int]] = {}
        # Per service object of the current mesh: its keys, computed once for every role.
        self._service_keys: dict[int, tuple[Service, Key, Key]] = {}

    def begin(self, mesh: Mesh) -> None:
        """Translation for `mesh` starts; a new mesh (by identity) starts a new generation."""
        if mesh is self._mesh:
            return
        self._mesh = mesh
        self._generation += 1
        self._by_mesh.clear()
        self._service_keys.clear()
        # Least recently used first: stop at the first entry used for the previous mesh or this one.
        while self._entries:
            slot, entry = next(iter(self._entries.items()))
            if entry.generation >= self._generation - 1:
                break
            del self._entries[slot]
            self._bytes -= entry.size

    def get(self, kind: str, key: Hashable, build: Callable[[], T]) -> T:
        """The memoised value of `build()` for (kind, key), built now if absent."""
        if not self.max_bytes:
            return build()
        slot = _Slot(kind, key)
        found = self._entries.pop(slot, None)
        if found is not None:
            # Stored again under this slot, last: later lookups from this mesh compare keys by identity.
            found.generation = self._generation
            self._entries[slot] = found
            return found.value  # type: ignore[return-value]
        value = build()
        size = estimated_bytes(value)
        if size > self.max_bytes:
            return value  # larger than the whole memo: never kept
        self._entries[slot] = _Entry(value, size, self._generation)
        self._bytes += size
        while self._entries and self.size_bytes() > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size
        return value

    def settings_key(self, service: Service) -> Key:
        """The service without its endpoints: what its Cluster and Route are built from."""
        return self._keys(service)[1]

    def endpoints_key(self, service: Service) -> Key:
        """What the service's ClusterLoadAssignments are built from: its endpoints and locality mode."""
        return self._keys(service)[2]

    def _keys(self, service: Service) -> tuple[Service, Key, Key]:
        found = self._service_keys.get(id(service))
        if found is not None and found[0] is service:
            return found
        keys = (
            service,
            Key(_settings_of(service)),
            Key((service.name, service.policy.load_balancing.locality, service.endpoints)),
        )
        if self.max_bytes:
            self._service_keys[id(service)] = keys
        return keys

    def for_mesh(self, kind: str, mesh: Mesh, build: Callable[[], T]) -> T:
        """A value derived from the whole mesh, kept for the latest mesh only (by identity: hashing
        a whole mesh would cost more than the value saves)."""
        found = self._by_mesh.get(kind)
        if found is not None and found[0] is mesh:
            return found[1]  # type: ignore[return-value]
        value = build()
        if self.max_bytes:
            self._by_mesh[kind] = (mesh, value, estimated_bytes(value))
        return value

    def size_bytes(self) -> int:
        """The memory the memo holds now, estimated in bytes (the controlplane_translation_cache_bytes metric)."""
        per_mesh = sum(size for _, _, size in self._by_mesh.values()) + len(self._service_keys) * SERVICE_KEYS_BYTES
        return self._bytes + per_mesh

    def __len__(self) -> int:
        return len(self._entries) + len(self._by_mesh)
