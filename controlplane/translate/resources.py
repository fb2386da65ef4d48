"""The set of Envoy resources one role receives, by type."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from controlplane.xds.types import TypeUrl


@dataclass(frozen=True)
class Resources:
    """Resources by type URL, then by name. The messages may be shared with other roles and
    other revisions (see memo.py): never mutate them.

    `depends_on` names the services whose settings, presence or endpoints these resources are
    built from (None: every service in the mesh, as the edge's are): a change to any other service
    leaves them as they are, which is what lets the cache rebuild only the roles a change reaches.
    A service's endpoints only ever reach the ClusterLoadAssignment named after it."""

    by_type: dict[TypeUrl, dict[str, Message]] = field(default_factory=dict)
    depends_on: frozenset[str] | None = None
    # The clusters each route configuration (by name) sends traffic to, where translation knows
    # them as it builds the configuration; the cache walks the others (make-before-break needs them).
    references: dict[str, frozenset[str]] = field(default_factory=dict)

    def of(self, type_url: TypeUrl) -> dict[str, Message]:
        return self.by_type.get(type_url, {})
