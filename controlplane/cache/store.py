"""The snapshot cache: the current Mesh, a snapshot per role built on demand, change notification."""

from __future__ import annotations

import asyncio
import time

import structlog

from controlplane.cache.snapshot import Interner, Snapshot, build_snapshot
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import ProxyRole
from controlplane.translate import translate
from controlplane.translate.edge_options import EdgeOptions

log = structlog.get_logger()


# Memoised translations (translate.*) return the same message objects across revisions while their
# input is unchanged; the interner keeps their serialized form for as long as it holds them.
INTERNER_LIMIT = 200_000


class SnapshotCache:
    """Holds the current Mesh; streams read snapshots for their role and wait for changes.

    Snapshots are built once per (mesh revision, role) and shared by every proxy of that role.
    Nothing is served before the first Mesh arrives: a proxy never sees a partial view as if it
    were complete.
    """

    def __init__(self, edge: EdgeOptions = EdgeOptions()) -> None:
        self._edge = edge
        self._mesh: Mesh | None = None
        self._revision = 0
        self._changed = asyncio.Event()
        self._snapshots: dict[ProxyRole, tuple[int, Snapshot]] = {}
        self._interner = Interner()
        self.updated_at: float | None = None

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
        self.updated_at = time.time()
        # Rebuild eagerly for roles already in use, so the first stream to wake does not pay for all.
        for role in list(self._snapshots):
            self.snapshot(role)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def snapshot(self, role: ProxyRole) -> Snapshot | None:
        """The snapshot for `role` at the current revision (None before the first Mesh)."""
        if self._mesh is None:
            return None
        cached = self._snapshots.get(role)
        if cached is not None and cached[0] == self._revision:
            return cached[1]
        started = time.perf_counter()
        snapshot = build_snapshot(translate(self._mesh, role, self._edge), cached[1] if cached else None, self._interner)
        self._snapshots[role] = (self._revision, snapshot)
        log.debug("cache.snapshot_built", role=role.key, revision=self._revision, ms=round((time.perf_counter() - started) * 1000, 2))
        return snapshot

    async def wait_changed(self, seen_revision: int) -> int:
        """Wait until the revision differs from `seen_revision`; return the new revision."""
        while self._revision == seen_revision:
            await self._changed.wait()
        return self._revision
