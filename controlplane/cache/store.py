"""The snapshot cache: the current Mesh, a snapshot per live role kept up to date change by change,
change notification."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Callable

import structlog

from controlplane.cache.snapshot import Interner, Snapshot, build_snapshot
from controlplane.errors import RoleLimitError
from controlplane.model.delta import MeshDelta, mesh_delta
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import ProxyRole
from controlplane.translate import TranslationMemo, translate, translate_endpoints, translate_settings
from controlplane.translate.edge_options import EdgeOptions
from controlplane.xds.types import ORDER, TypeUrl

log = structlog.get_logger()

# Live roles (distinct proxy configurations) served at once; see Settings.xds_max_roles.
DEFAULT_MAX_ROLES = 2_000


@dataclass(eq=False)
class _Role:
    """A role some stream holds: its streams' change callbacks, and once built, its snapshot with
    what it was built from (the services it depends on, the memo slots it used)."""

    listeners: set[Callable[[], None]] = field(default_factory=set)
    snapshot: Snapshot | None = None
    depends_on: frozenset[str] | None = None  # None: every service
    slots: frozenset[Hashable] = frozenset()


class SnapshotCache:
    """Holds the current Mesh and a snapshot per live role; tells each role's streams when it changes.

    A role lives while streams hold it (`acquire` / `release`): its snapshot is built at the first
    request, shared by every proxy of the role, kept up to date with each mesh, and dropped (with
    the resources only it held) when its last stream leaves. At most `max_roles` roles live at
    once, so a client inventing roles cannot grow the cache or the work each change costs.

    A change costs what it changes. Each role's resources say which services they depend on
    (Resources.depends_on); a new mesh rebuilds only the roles that depend on a service whose
    settings changed or that came or went, and for a service whose endpoints alone changed,
    replaces just its ClusterLoadAssignment in the roles that have it. Only the streams whose
    role's snapshot changed are woken. Nothing is served before the first Mesh arrives: a proxy
    never sees a partial view as if it were complete.
    """

    def __init__(
        self,
        memo: TranslationMemo | None = None,
        edge: EdgeOptions = EdgeOptions(),
        max_roles: int = DEFAULT_MAX_ROLES,
        interner: Interner | None = None,
    ) -> None:
        # One memo per process: pass the one whose size the metrics report.
        self.memo = memo if memo is not None else TranslationMemo()
        self._edge = edge
        self._mesh: Mesh | None = None
        self._revision = 0
        self._max_roles = max_roles
        self._roles: dict[ProxyRole, _Role] = {}
        self._snapshots = 0  # live roles with a snapshot
        # Which built roles a change to a service reaches: by service name, and those that depend on every service.
        self._dependents: dict[str, set[ProxyRole]] = {}
        self._everything: set[ProxyRole] = set()
        self._interner = interner if interner is not None else Interner()
        self.builds = 0  # role snapshots translated in full (tests, benchmarks)
        self.patches = 0  # role snapshots whose endpoints alone were replaced

    @property
    def max_roles(self) -> int:
        return self._max_roles

    @property
    def live_roles(self) -> int:
        """Roles held by at least one stream (at most max_roles)."""
        return len(self._roles)

    @property
    def snapshots(self) -> int:
        """Snapshots kept (one per live role that has been served)."""
        return self._snapshots

    @property
    def interned(self) -> int:
        """Serialized resources kept by the interner."""
        return len(self._interner)

    def interned_bytes(self) -> int:
        """Bytes the interner keeps (estimated; the controlplane_cache_interned_bytes metric)."""
        return self._interner.size_bytes()

    def acquire(self, role: ProxyRole, on_change: Callable[[], None]) -> None:
        """A stream serves `role` from now on; `on_change` is called (synchronously, so it must be
        cheap) each time the role's snapshot changes. RoleLimitError if that would exceed max_roles."""
        live = self._roles.get(role)
        if live is None:
            if len(self._roles) >= self._max_roles:
                raise RoleLimitError(
                    f"role '{role.key}' would be live role {len(self._roles) + 1}; this control plane serves "
                    f"at most {self._max_roles} roles at once (--xds-max-roles)"
                )
            live = self._roles[role] = _Role()
        live.listeners.add(on_change)

    def release(self, role: ProxyRole, on_change: Callable[[], None]) -> None:
        """A stream of `role` ended; the last one to leave drops the role's snapshot."""
        live = self._roles.get(role)
        if live is None:
            return
        live.listeners.discard(on_change)
        if not live.listeners:
            del self._roles[role]
            if live.snapshot is not None:
                self._unindex(role, live)
                self._snapshots -= 1
                self._interner.let_go(live.snapshot.all())
                self.memo.release(live.slots)
                self._settle()

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
            self._revision += 1
            self._rebuild_all()
        return True

    def set_mesh(self, mesh: Mesh, delta: MeshDelta | None = None) -> bool:
        """Publish a new Mesh; returns False (and wakes nobody) when it equals the current one.
        `delta` (from the incremental model builder) says what changed; without it, it is derived."""
        if self._mesh is None:
            self._mesh = mesh
            self._revision += 1
            self._rebuild_all()
            return True
        if delta is None:
            delta = mesh_delta(self._mesh, mesh)
        if delta.empty:
            return False
        old, self._mesh = self._mesh, mesh
        self._revision += 1
        self._apply(delta, old)
        return True

    def snapshot(self, role: ProxyRole) -> Snapshot | None:
        """The snapshot for `role` of the current mesh (None before the first Mesh)."""
        if self._mesh is None:
            return None
        live = self._roles.get(role)
        if live is not None and live.snapshot is not None:
            return live.snapshot
        if live is None:  # a role nobody holds is built for the caller and not kept
            snapshot = build_snapshot(translate(self._mesh, role, self.memo, edge=self._edge), None, self._interner)
            self._settle()
            return snapshot
        self._build(role, live)
        self._settle()
        return live.snapshot

    # -- keeping the live roles up to date ------------------------------------------------------

    def _rebuild_all(self) -> None:
        # Eagerly, so the first stream to wake does not pay for all; roles not built yet are woken
        # too (streams waiting for the first mesh).
        for role, live in list(self._roles.items()):
            if self._build(role, live):
                self._notify(live)
        self._settle()

    def _apply(self, delta: MeshDelta, old: Mesh) -> None:
        """Rebuild the roles that depend on services whose settings changed or that came or went;
        replace the endpoints of those that have services whose endpoints alone changed. A role
        that depends on every service (the edge) replaces just what a change of settings reaches,
        when its translation can say what that is (translate_settings)."""
        rebuilt: set[ProxyRole] = set()
        structural = delta.settings | delta.added | delta.removed
        if structural:
            rebuilt = set(self._everything)
            for name in structural:
                rebuilt |= self._dependents.get(name, set())
        patched: set[ProxyRole] = set()
        if delta.endpoints:
            patched = set(self._everything)
            for name in delta.endpoints:
                patched |= self._dependents.get(name, set())
            patched -= rebuilt
        for role in rebuilt:
            live = self._roles[role]
            changed = self._patch_settings(role, live, delta, old) if role in self._everything else None
            if changed is None:
                changed = self._build(role, live)
            if changed:
                self._notify(live)
        for role in patched:
            live = self._roles[role]
            if self._patch(role, live, delta.endpoints):
                self._notify(live)
        self._settle()

    def _build(self, role: ProxyRole, live: _Role) -> bool:
        """Translate `role` in full; True when its snapshot changed."""
        assert self._mesh is not None
        started = time.perf_counter()
        with self.memo.recording() as used:
            resources = translate(self._mesh, role, self.memo, edge=self._edge)
        before = live.snapshot
        snapshot = build_snapshot(resources, before, self._interner)
        self.builds += 1
        slots = frozenset(used)
        self.memo.retain(slots - live.slots)
        self.memo.release(live.slots - slots)
        live.slots = slots
        if before is None:
            self._snapshots += 1
        if before is None or resources.depends_on != live.depends_on:
            if before is not None:
                self._unindex(role, live)
            live.depends_on = resources.depends_on
            self._index(role, live)
        log.debug("cache.snapshot_built", role=role.key, revision=self._revision, ms=round((time.perf_counter() - started) * 1000, 2))
        if snapshot is before:
            return False
        self._hold(before, snapshot)
        live.snapshot = snapshot
        return True

    def _patch(self, role: ProxyRole, live: _Role, services: Iterable[str]) -> bool:
        """Replace the ClusterLoadAssignments of `services` that `role` has; True when any changed."""
        assert self._mesh is not None and live.snapshot is not None
        held = live.snapshot.of(TypeUrl.ENDPOINT)
        names = [name for name in services if name in held]
        if not names:
            return False
        messages = translate_endpoints(self._mesh, role, names, self.memo)
        prepared = {name: self._interner.prepare(name, TypeUrl.ENDPOINT, message) for name, message in messages.items()}
        snapshot, replaced = live.snapshot.replacing(TypeUrl.ENDPOINT, prepared)
        if snapshot is live.snapshot:
            return False
        self.patches += 1
        self._interner.hold(prepared[name] for name in replaced)
        self._interner.let_go(replaced.values())
        live.snapshot = snapshot
        return True

    def _patch_settings(self, role: ProxyRole, live: _Role, delta: MeshDelta, old: Mesh) -> bool | None:
        """Replace what a change of settings reaches in `role`'s snapshot (for the services whose
        settings or endpoints changed); True when any resource changed, None: build it in full."""
        assert self._mesh is not None
        if live.snapshot is None or delta.added or delta.removed:
            return None
        resources = translate_settings(old, self._mesh, role, delta.settings, self.memo)
        if resources is None:
            return None
        messages = resources.by_type
        if delta.endpoints:
            messages.setdefault(TypeUrl.ENDPOINT, {}).update(translate_endpoints(self._mesh, role, delta.endpoints, self.memo))
        for type_url, by_name in messages.items():
            if any(name not in live.snapshot.of(type_url) for name in by_name):
                return None  # a resource the role did not have: translate in full
        prepared = {
            type_url: {
                name: self._interner.prepare(name, type_url, message, resources.references.get(name) if type_url is TypeUrl.ROUTE else None)
                for name, message in by_name.items()
            }
            for type_url, by_name in messages.items()
        }
        snapshot, replaced = live.snapshot.replacing_types(prepared)
        if snapshot is live.snapshot:
            return False
        self.patches += 1
        for type_url, by_name in replaced.items():
            self._interner.hold(prepared[type_url][name] for name in by_name)
            self._interner.let_go(by_name.values())
        live.snapshot = snapshot
        return True

    def _hold(self, before: Snapshot | None, after: Snapshot) -> None:
        """Account for the resources `after` takes up and `before` lets go of (one role's)."""
        for type_url in ORDER:
            old, new = (before.of(type_url) if before is not None else {}), after.of(type_url)
            if old is new:
                continue
            self._interner.hold(resource for name, resource in new.items() if old.get(name) is not resource)
            self._interner.let_go(resource for name, resource in old.items() if new.get(name) is not resource)

    def _index(self, role: ProxyRole, live: _Role) -> None:
        if live.depends_on is None:
            self._everything.add(role)
            return
        for name in live.depends_on:
            self._dependents.setdefault(name, set()).add(role)

    def _unindex(self, role: ProxyRole, live: _Role) -> None:
        if live.depends_on is None:
            self._everything.discard(role)
            return
        for name in live.depends_on:
            dependents = self._dependents.get(name)
            if dependents is not None:
                dependents.discard(role)
                if not dependents:
                    del self._dependents[name]

    @staticmethod
    def _notify(live: _Role) -> None:
        for on_change in list(live.listeners):
            on_change()

    def _settle(self) -> None:
        """Let superseded resources and memo slots go once no live snapshot holds them."""
        self._interner.settle()
        self.memo.settle()
