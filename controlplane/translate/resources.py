"""The set of Envoy resources one role receives, by type."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from controlplane.xds.types import TypeUrl


@dataclass(frozen=True)
class Resources:
    """Resources by type URL, then by name. The messages may be shared with other roles and
    other revisions (see memo.py): never mutate them."""

    by_type: dict[TypeUrl, dict[str, Message]] = field(default_factory=dict)

    def of(self, type_url: TypeUrl) -> dict[str, Message]:
        return self.by_type.get(type_url, {})
