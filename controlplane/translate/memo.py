"""Memoised translation: messages built once and shared by every role and every mesh revision
whose input is unchanged, bounded in bytes.

Sharing matters beyond the CPU saved: the cache serializes a message object once (see
cache.snapshot.Interner), so an unchanged service keeps its bytes and its version across revisions.

Each message has a slot: `get(kind, key, build)` keys the slot on `key` itself (small hashable
inputs: a role's listen address); `get_for(kind, name, key, build)` gives one slot per service name
and kind, and compares `key` (what the message is built from: a service's settings, or its
endpoints) with the one the slot was built from. Comparing, not hashing, is what keeps a lookup
cheap: the incremental model hands over the very objects of unchanged services, so the comparison
is a few identity checks, where hashing would walk every policy object. A slot whose key changed is
built again in place: the superseded message is released at once, so what the memo holds follows
the mesh, not the number of changes.

Slots live while roles use them: the cache records the slots each role's translation used, holds
them (`retain`) while it keeps that role's snapshot, and lets them go (`release`); `settle` drops
the slots nobody holds. Callers must never mutate what the memo returns (copy first).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Callable, Hashable, TypeVar

from google.protobuf.message import Message

from controlplane.model.delta import settings_of
from controlplane.model.mesh import Service

T = TypeVar("T")

# The memory a memoised message holds, estimated from its serialized size: Python protobuf (upb)
# messages take about 6.5 times their serialized size in memory (ClusterLoadAssignments, whose
# endpoint metadata are maps, dominate), plus about 2 KiB per entry (small messages, the key, the
# record). Calibrated against RSS, see docs/benchmarks.md ("Translation memo").
IN_MEMORY_PER_SERIALIZED_BYTE = 7
ENTRY_OVERHEAD_BYTES = 2048
# One memo per process (the snapshot cache holds it). It must hold one revision's messages for
# every live role (about 60 MB at 10,000 tasks, 1,000 services, 2,000 roles); beyond the bound
# new messages are built but not kept.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024


class _Entry:
    __slots__ = ("key", "value", "size", "holders")

    def __init__(self, key: object, value: object, size: int) -> None:
        self.key, self.value, self.size, self.holders = key, value, size, 0


def estimated_bytes(value: object) -> int:
    """What keeping `value` in the memo costs, in bytes of memory (an estimate, see above)."""
    if isinstance(value, Message):
        return value.ByteSize() * IN_MEMORY_PER_SERIALIZED_BYTE + ENTRY_OVERHEAD_BYTES
    # Values kept serialized say what they hold (translate/route.py's edge route configuration).
    size = getattr(value, "estimated_bytes", None)
    if isinstance(size, int):
        return size + ENTRY_OVERHEAD_BYTES
    return sys.getsizeof(value) + ENTRY_OVERHEAD_BYTES


class TranslationMemo:
    """Messages by slot, at most `max_bytes` of them; `max_bytes=0` memoises nothing."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes={max_bytes}: expected 0 (off) or more")
        self.max_bytes = max_bytes
        self._entries: dict[Hashable, _Entry] = {}
        self._bytes = 0
        self._recording: set[Hashable] | None = None
        self._unheld: list[Hashable] = []  # slots created since the last settle (held by nobody yet)

    def get(self, kind: str, key: Hashable, build: Callable[[], T]) -> T:
        """The memoised value of `build()` for (kind, key), built now if absent."""
        return self._lookup((kind, key), key, build)

    def get_for(self, kind: str, name: Hashable, key: object, build: Callable[[], T]) -> T:
        """The memoised value of `build()` in the slot (kind, name), built again when `key` differs
        from the key it was built from (compared with ==, identity first)."""
        return self._lookup((kind, name), key, build)

    def _lookup(self, slot: Hashable, key: object, build: Callable[[], T]) -> T:
        if not self.max_bytes:
            return build()
        if self._recording is not None:
            self._recording.add(slot)
        entry = self._entries.get(slot)
        if entry is not None and (entry.key is key or entry.key == key):
            return entry.value  # type: ignore[return-value]
        value = build()
        size = estimated_bytes(value)
        if entry is not None:  # superseded: replaced in place, held by the same roles
            self._bytes += size - entry.size
            entry.key, entry.value, entry.size = key, value, size
        elif self._bytes + size <= self.max_bytes:
            self._entries[slot] = _Entry(key, value, size)
            self._bytes += size
            self._unheld.append(slot)
        return value

    def peek(self, kind: str, name: Hashable) -> object | None:
        """What the slot (kind, name) holds now, if anything (to build its next value from; not a use)."""
        entry = self._entries.get((kind, name))
        return entry.value if entry is not None else None

    @staticmethod
    def settings_key(service: Service) -> tuple[object, ...]:
        """The service without its endpoints: what its Cluster and Route are built from."""
        return settings_of(service)  # type: ignore[no-any-return]

    @staticmethod
    def endpoints_key(service: Service) -> tuple[object, ...]:
        """What the service's ClusterLoadAssignments are built from: its endpoints and locality mode."""
        return (service.policy.load_balancing.locality, service.endpoints)

    # -- lifetime ------------------------------------------------------------------------------

    @contextmanager
    def recording(self) -> Iterator[set[Hashable]]:
        """The slots used inside the block (one role's translation)."""
        outer, self._recording = self._recording, set()
        try:
            yield self._recording
        finally:
            self._recording = outer

    def retain(self, slots: Iterable[Hashable]) -> None:
        for slot in slots:
            entry = self._entries.get(slot)
            if entry is not None:
                entry.holders += 1

    def release(self, slots: Iterable[Hashable]) -> None:
        for slot in slots:
            entry = self._entries.get(slot)
            if entry is not None:
                entry.holders -= 1
                if entry.holders <= 0:
                    self._unheld.append(slot)

    def settle(self) -> None:
        """Drop the slots no role holds (created for a role nobody keeps, or released)."""
        for slot in self._unheld:
            entry = self._entries.get(slot)
            if entry is not None and entry.holders <= 0:
                del self._entries[slot]
                self._bytes -= entry.size
        self._unheld.clear()

    def size_bytes(self) -> int:
        """The memory the memo holds now, estimated in bytes (the controlplane_translation_cache_bytes metric)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
