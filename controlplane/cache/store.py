"""The snapshot cache: the current Mesh, a snapshot per role built on demand, change notification."""

from __future__ import annotations

import time
from typing import Callable

import structlog

from controlplane.cache.snapshot import Interner, Snapshot, build_snapshot
from controlplane.errors import RoleLimitError
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import ProxyRole
from controlplane.translate import TranslationMemo, translate
from controlplane.translate.edge_options import EdgeOptions

log = structlog.get_logger()


# Memoised translations (translate.*) return the same message objects across revisions while their
# input is unchanged; the interner keeps their serialized form for as long as it holds them.
INTERNER_LIMIT = 200_000
# Live roles (distinct proxy configurations) served at once; see Settings.xds_max_roles.
DEFAULT_MAX_ROLES = 2_000


class SnapshotCache:
    """Holds the current Mesh and a snapshot per role; tells each role's streams when it changes.

    Snapshots are built once per (mesh revision, role) and shared by every proxy of that role.
    A role lives while streams hold it (`acquire` / `release`): its snapshot is dropped when its
    last stream leaves, and at most `max_roles` roles live at once, so a client inventing roles
    cannot grow the cache or the work each change costs. A new Mesh wakes only the streams whose
    role's snapshot changed. Nothing is served before the first Mesh arrives: a proxy never sees a
    partial view as if it were complete.
    """

    def __init__(
        self, memo: TranslationMemo | None = None, edge: EdgeOptions = EdgeOptions(), max_roles: int = DEFAULT_MAX_ROLES
    ) -> None:
        # One memo per process: pass the one whose size the metrics report.
        self.memo = memo if memo is not None else TranslationMemo()
        self._edge = edge
        self._mesh: Mesh | None = None
        self._revision = 0
        self._max_roles = max_roles
        # Live roles, each with the change callbacks of the streams that hold it.
        self._listeners: dict[ProxyRole, set[Callable[[], None]]] = {}
        self._snapshots: dict[ProxyRole, tuple[int, Snapshot]] = {}  # of live roles only
        self._interner = Interner()

    @property
    def max_roles(self) -> int:
        return self._max_roles

    @property
    def live_roles(self) -> int:
        """Roles held by at least one stream (at most max_roles)."""
        return len(self._listeners)

    @property
    def snapshots(self) -> int:
        """Snapshots kept (one per live role that has been served)."""
        return len(self._snapshots)

    @property
    def interned(self) -> int:
        """Serialized resources kept by the interner."""
        return len(self._interner)

    def acquire(self, role: ProxyRole, on_change: Callable[[], None]) -> None:
        """A stream serves `role` from now on; `on_change` is called (synchronously, so it must be
        cheap) each time the role's snapshot changes. RoleLimitError if that would exceed max_roles."""
        listeners = self._listeners.get(role)
        if listeners is None:
            if len(self._listeners) >= self._max_roles:
                raise RoleLimitError(
                    f"role '{role.key}' would be live role {len(self._listeners) + 1}; this control plane serves "
                    f"at most {self._max_roles} roles at once (--xds-max-roles)"
                )
            listeners = self._listeners[role] = set()
        listeners.add(on_change)

    def release(self, role: ProxyRole, on_change: Callable[[], None]) -> None:
        """A stream of `role` ended; the last one to leave drops the role's snapshot."""
        listeners = self._listeners.get(role)
        if listeners is None:
            return
        listeners.discard(on_change)
        if not listeners:
            del self._listeners[role]
            self._snapshots.pop(role, None)

    @property
    def mesh(self) -> Mesh | None:
        return self._mesh

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def edge(self) -> EdgeOptions:
        return self._edge

    def set_edge(self, edge: EdgeOptions) -> bool:
        """Publish new edge options (a rotated certificate); False when they equal the current ones."""
        if edge == self._edge:
            return False
        self._edge = edge
        if self._mesh is not None:
            self._publish()
        return True

    def set_mesh(self, mesh: Mesh) -> bool:
        """Publish a new Mesh; returns False (and wakes nobody) when it equals the current one."""
        if mesh == self._mesh:
            return False
        self._mesh = mesh
        self._publish()
        return True

    def _publish(self) -> None:
        self._revision += 1
        if len(self._interner) > INTERNER_LIMIT:
            self._interner = Interner()
        # Rebuild eagerly for the live roles, so the first stream to wake does not pay for all, and
        # wake only the streams of roles whose snapshot changed (an unchanged one stays the same object).
        for role, listeners in list(self._listeners.items()):
            before = self._snapshots.get(role)
            if self.snapshot(role) is not (before[1] if before else None):
                for on_change in list(listeners):
                    on_change()

    def snapshot(self, role: ProxyRole) -> Snapshot | None:
        """The snapshot for `role` at the current revision (None before the first Mesh)."""
        if self._mesh is None:
            return None
        cached = self._snapshots.get(role)
        if cached is not None and cached[0] == self._revision:
            return cached[1]
        started = time.perf_counter()
        snapshot = build_snapshot(translate(self._mesh, role, self.memo, edge=self._edge), cached[1] if cached else None, self._interner)
        if role in self._listeners:  # a role nobody holds is built for the caller and not kept
            self._snapshots[role] = (self._revision, snapshot)
        log.debug("cache.snapshot_built", role=role.key, revision=self._revision, ms=round((time.perf_counter() - started) * 1000, 2))
        return snapshot
