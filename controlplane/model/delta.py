"""What changed between two meshes, by service name. Pure.

Unchanged services keep their identity from one mesh to the next (model/incremental.py), so
telling changed from unchanged costs an identity check, and a service whose settings objects are
the ones it had differs in its endpoints alone."""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass

from controlplane.model.mesh import Mesh, Service

# Every field of a Service but its endpoints, whatever fields the model adds later.
SETTINGS_FIELDS = tuple(f.name for f in dataclasses.fields(Service) if f.name != "endpoints")
# A service's settings as a tuple. Compare it, do not hash it: hashing walks every policy object.
settings_of = operator.attrgetter(*SETTINGS_FIELDS)


@dataclass(frozen=True, slots=True)
class MeshDelta:
    """The services whose endpoints alone changed, whose settings changed (endpoints maybe too),
    that were added and that were removed; and whether the problems changed."""

    endpoints: frozenset[str] = frozenset()
    settings: frozenset[str] = frozenset()
    added: frozenset[str] = frozenset()
    removed: frozenset[str] = frozenset()
    problems: bool = False

    @property
    def services(self) -> frozenset[str]:
        """Every service name the change touches."""
        return self.endpoints | self.settings | self.added | self.removed

    @property
    def endpoints_only(self) -> bool:
        """True when only endpoint sets changed: only ClusterLoadAssignments can differ."""
        return not (self.settings or self.added or self.removed)

    @property
    def empty(self) -> bool:
        return self.endpoints_only and not self.endpoints and not self.problems


def same_settings(first: Service, second: Service) -> bool:
    return first is second or settings_of(first) == settings_of(second)


def mesh_delta(old: Mesh | None, new: Mesh) -> MeshDelta:
    """The delta from `old` to `new`, by name; O(services), identity checks for unchanged services."""
    before = {s.name: s for s in old.services} if old is not None else {}
    endpoints, settings, added = set(), set(), set()
    for service in new.services:
        was = before.pop(service.name, None)
        if was is None:
            added.add(service.name)
        elif was is service:
            continue
        elif same_settings(was, service):
            if was.endpoints != service.endpoints:
                endpoints.add(service.name)
        else:
            settings.add(service.name)
    return MeshDelta(
        endpoints=frozenset(endpoints),
        settings=frozenset(settings),
        added=frozenset(added),
        removed=frozenset(before),
        problems=old is None or (old.problems is not new.problems and old.problems != new.problems),
    )
