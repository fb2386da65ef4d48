"""The mesh, kept up to date view by view: a change costs what it changes.

Between views the builder keeps every task's contribution (per service it declares: its endpoint
and start time, in the claims of families.py) and each task definition's parsed labels (by ARN,
label_cache.py). A new view is compared with the last one by task identity (discovery keeps the
Task objects of unchanged tasks); when the view carries its task table's change log
(ClusterState.changes), only the tasks the log names are looked at, so a change costs what it
touches, not the number of tasks.

- A change that moves only endpoints (a task added, removed, or its health changed, in a family
  whose first start and ownership stay as they are) replaces those services' endpoint sets and
  nothing else: every other Service, the problems and the edge's virtual hosts are the very
  objects of the previous mesh.
- A change of settings that leaves every decision at the edge as it was (a new revision with
  another retry, timeout or balancing label: the same rank, match, hosts, port, protocol and
  route size) assembles only the touched services again, and writes again only the problems that
  name them (the Assembly keeps each admission decision by name and the problems by step).
- Anything else (a service that comes or goes, an ownership, an established order or a route
  that moves) assembles the mesh again from the kept claims (build.assemble): no label is parsed
  again, and every service equal to its previous version keeps the previous object.
Either way the result equals build_mesh of the same views (tests/unit/test_incremental_model.py).
"""

from __future__ import annotations

import bisect
from itertools import chain
import dataclasses
from collections.abc import Iterable
from functools import partial
from dataclasses import dataclass, field

from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.model.build import (
    Assembly,
    Candidate,
    ResourceCheck,
    admission_problems_of,
    assemble,
    candidate,
    merged_endpoints,
    parse_task_definition,
    resolved_targets,
    unknown_upstreams,
)
from controlplane.model.delta import MeshDelta, mesh_delta, same_settings
from controlplane.model.families import Claim, Ownership, resolve
from controlplane.model.label_cache import ParsedTaskDefinition, TaskDefinitionLabels
from controlplane.model.labels import DEFAULT_PREFIX
from controlplane.model.host_rule import DefaultHostRule
from controlplane.model.lifecycle import HealthPolicy, endpoint_health
from controlplane.model.limits import Limits, route_bytes
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Service, ServiceProblem


@dataclass(frozen=True, slots=True)
class MeshUpdate:
    """The mesh after a view, and how it differs from the one before."""

    mesh: Mesh
    delta: MeshDelta
    # False when only the services the change touched were assembled again (their resource checks
    # ran, nobody else's): see MemoisedCheck.hold.
    assembled: bool = True


@dataclass(slots=True)
class _LiveTaskDefinition:
    """A task definition some live task runs, and in which clusters (for the default host rule)."""

    task_definition: TaskDefinition
    parsed: ParsedTaskDefinition
    tasks: int = 0
    clusters: dict[str, int] = field(default_factory=dict)  # cluster -> live tasks there


@dataclass(slots=True)
class _View:
    state: ClusterState
    tasks: dict[str, Task]  # by ARN


@dataclass(slots=True)
class _Changes:
    """What applying one view touched."""

    claims: dict[int, tuple[Claim, float | None]] = field(default_factory=dict)  # id -> (claim, first start before)
    names: set[str] = field(default_factory=set)  # the service names of those claims
    structural: bool = False  # task definitions came or went: assemble again

    def touch(self, claim: Claim) -> None:
        if id(claim) not in self.claims:
            self.claims[id(claim)] = (claim, claim.first_started)
            self.names.add(claim.declaration.name)


class MeshBuilder:
    """Builds the Mesh from cluster views, incrementally (see the module's docstring). Not thread-safe."""

    def __init__(
        self,
        prefix: str = DEFAULT_PREFIX,
        limits: Limits = Limits(),
        health_policy: HealthPolicy = HealthPolicy(),
        *,
        services_from_port_names: bool = False,
        host_rule: DefaultHostRule | None = None,
        labels: TaskDefinitionLabels | None = None,
        resource_check: ResourceCheck | None = None,
    ) -> None:
        self._limits = limits
        self._resource_check = resource_check
        self._health_policy = health_policy
        self._host_rule = host_rule
        # The labels' meaning depends on the prefix and on port-name services: a cache serves one builder's settings.
        self.labels = labels if labels is not None else TaskDefinitionLabels(partial(parse_task_definition, prefix=prefix, services_from_port_names=services_from_port_names))
        self._views: dict[str, _View] = {}
        self._contributed: dict[str, str] = {}  # task ARN -> ARN of the task definition it contributes under
        self._task_definitions: dict[str, _LiveTaskDefinition] = {}
        # The parse problems of the live task definitions that have some, in the order of _task_definitions.
        self._parse_problems: dict[str, tuple[ServiceProblem, ...]] = {}
        self._claims: dict[str, dict[str, Claim]] = {}  # service name -> task-definition ARN -> claim
        self._assembly: Assembly | None = None
        self._mesh: Mesh | None = None
        self._positions: dict[str, int] = {}  # service name -> index in mesh.services
        self._order_index: dict[str, int] = {}  # service name -> index in the established order
        self._health: dict[EndpointHealth, int] = dict.fromkeys(EndpointHealth, 0)
        self._endpoint_sets: dict[str, tuple[tuple[Claim, ...], tuple[Endpoint, ...]]] = {}  # by name, with the claims

    @property
    def mesh(self) -> Mesh | None:
        return self._mesh

    def endpoints_by_health(self) -> dict[EndpointHealth, int]:
        """Endpoints of the current mesh by health (kept up to date from each delta)."""
        return dict(self._health)

    def update(self, states: Iterable[ClusterState]) -> MeshUpdate:
        """The mesh for these views (every watched cluster's latest), and its delta from the last one."""
        changes = _Changes()
        seen = set()
        for state in states:
            seen.add(state.cluster)
            self._apply(state, changes)
        for cluster in [c for c in self._views if c not in seen]:
            view = self._views.pop(cluster)
            for task in view.tasks.values():
                self._remove(task, changes)

        old, old_positions = self._mesh, self._positions
        for name in changes.names:  # the endpoint sets kept for these are stale now
            self._endpoint_sets.pop(name, None)
        update = None if old is None or changes.structural else self._with_endpoints(old, changes)
        if update is None:
            update = self._reassemble(old, changes)
        self._count(old, old_positions, update)
        self._mesh = update.mesh
        return update

    # -- views -> claims ------------------------------------------------------------------------

    def _apply(self, state: ClusterState, changes: _Changes) -> None:
        view = self._views.get(state.cluster)
        if view is not None and view.state is state:
            return
        changed = None
        if view is not None and state.changes is not None and state.changes is view.state.changes:
            changed = state.changes.between(view.state.position, state.position)
        if view is None or changed is None:
            gone, new, tasks = self._compare(view, state)
        else:
            gone, new, tasks = self._look_up(view, state, changed)
        self._views[state.cluster] = _View(state, tasks)
        # In ARN order, so that a view is applied the same way on every run and replica.
        for task in sorted(gone, key=_arn):
            self._remove(task, changes)
        for task in sorted(new, key=_arn):
            self._add(task, state.task_definitions.get(task.task_definition_arn), changes)

    @staticmethod
    def _compare(view: _View | None, state: ClusterState) -> tuple[list[Task], list[Task], dict[str, Task]]:
        """Every task compared with the previous view (by identity: discovery keeps unchanged ones)."""
        before = view.tasks if view is not None else {}
        now = {task.arn: task for task in state.tasks}
        gone = [task for arn, task in before.items() if now.get(arn) is not task]
        new = [task for arn, task in now.items() if before.get(arn) is not task]
        if view is not None and state.task_definitions is not view.state.task_definitions:
            # A task whose task definition was missing from the view (or is no longer) counts anew.
            moved = view.state.task_definitions.keys() ^ state.task_definitions.keys()
            if moved:
                again = [t for arn, t in now.items() if before.get(arn) is t and t.task_definition_arn in moved]
                gone += again
                new += again
        return gone, new, now

    @staticmethod
    def _look_up(view: _View, state: ClusterState, changed: Iterable[str]) -> tuple[list[Task], list[Task], dict[str, Task]]:
        """Only the tasks the change log names (the state's tasks are in ARN order)."""
        tasks = view.tasks  # taken over: the previous view is not needed again
        gone, new = [], []
        for arn in changed:
            index = bisect.bisect_left(state.tasks, arn, key=_arn)
            now = state.tasks[index] if index < len(state.tasks) and state.tasks[index].arn == arn else None
            before = tasks.get(arn)
            if before is now:
                continue
            if before is not None:
                gone.append(before)
                del tasks[arn]
            if now is not None:
                new.append(now)
                tasks[arn] = now
        return gone, new, tasks

    def _remove(self, task: Task, changes: _Changes) -> None:
        arn = self._contributed.pop(task.arn, None)
        if arn is None:
            return
        live = self._task_definitions[arn]
        for declaration in live.parsed.declarations:
            claim = self._claims[declaration.name][arn]
            changes.touch(claim)
            claim.remove(task.arn)
        live.tasks -= 1
        live.clusters[task.cluster] -= 1
        if not live.clusters[task.cluster]:
            del live.clusters[task.cluster]
            changes.structural |= self._host_rule is not None  # the default hosts follow the clusters
        if live.tasks == 0:
            del self._task_definitions[arn]
            self._parse_problems.pop(arn, None)
            for declaration in live.parsed.declarations:
                claims = self._claims[declaration.name]
                del claims[arn]
                if not claims:
                    del self._claims[declaration.name]
            changes.structural = True

    def _add(self, task: Task, task_definition: TaskDefinition | None, changes: _Changes) -> None:
        if task_definition is None:
            return
        live = self._task_definitions.get(task_definition.arn)
        if live is None:
            live = self._task_definitions[task_definition.arn] = _LiveTaskDefinition(task_definition, self.labels.get(task_definition))
            if live.parsed.problems:
                self._parse_problems[task_definition.arn] = live.parsed.problems
            for declaration in live.parsed.declarations:
                self._claims.setdefault(declaration.name, {})[task_definition.arn] = Claim(task_definition, declaration)
            changes.structural = True
        live.tasks += 1
        if task.cluster not in live.clusters:
            live.clusters[task.cluster] = 0
            changes.structural |= self._host_rule is not None
        live.clusters[task.cluster] += 1
        self._contributed[task.arn] = task_definition.arn
        for declaration in live.parsed.declarations:
            claim = self._claims[declaration.name][task_definition.arn]
            changes.touch(claim)
            health = endpoint_health(task, declaration.container, task_definition, self._health_policy)
            reachable = task.endpoint_for(declaration.container, declaration.container_port)
            endpoint = None
            if health is not None and reachable is not None:
                endpoint = Endpoint(
                    address=reachable.address,
                    port=reachable.port,
                    task_arn=task.arn,
                    cluster=task.cluster,
                    task_definition=task_definition.display_name,
                    health=health,
                    availability_zone=task.availability_zone,
                )
            claim.add(task, endpoint)

    # -- claims -> mesh -------------------------------------------------------------------------

    def _with_endpoints(self, old: Mesh, changes: _Changes) -> MeshUpdate | None:
        """The mesh with new endpoint sets for the touched services; None when the change is more
        than that (an ownership, an established order or a revision split moves)."""
        assert self._assembly is not None
        names = {claim.declaration.name for claim, _ in changes.claims.values()}
        for claim, first_started in changes.claims.values():
            if claim.first_started != first_started and not self._same_standing(claim.declaration.name):
                return None
        services = list(old.services)
        changed: dict[str, Service] = {}
        for name in sorted(names):
            position = self._positions.get(name)
            if position is None:
                continue  # refused: its endpoints are served nowhere
            service = services[position]
            ownership = self._assembly.ownership[name]
            if ownership.winner.declaration.newest_revision_weight is not None:
                return None  # per-revision weights follow the endpoint counts
            endpoints = self._endpoints_of(name, ownership.accepted)
            if endpoints != service.endpoints:
                services[position] = changed[name] = _with_endpoints(service, endpoints)
        if not changed:
            return MeshUpdate(old, MeshDelta())
        return MeshUpdate(Mesh.with_routes_of(old, tuple(services), changed, old.problems), MeshDelta(endpoints=frozenset(changed)))

    def _endpoints_of(self, name: str, accepted: tuple[Claim, ...]) -> tuple[Endpoint, ...]:
        """The endpoint set of `name` served by `accepted`, kept until a view touches its claims."""
        found = self._endpoint_sets.get(name)
        if found is not None and found[0] == accepted:
            return found[1]
        endpoints = merged_endpoints(accepted)
        self._endpoint_sets[name] = (accepted, endpoints)
        return endpoints

    def _same_standing(self, name: str) -> bool:
        """After a first start moved: True when `name` keeps its ownership and its place in the
        established order (then the mesh differs in endpoints only); records its new rank."""
        assert self._assembly is not None
        before = self._assembly.ownership[name]
        after = resolve(name, list(self._claims[name].values()))
        if after.winner is not before.winner or after.accepted != before.accepted or after.problems != before.problems:
            return False
        order = self._assembly.order
        index = self._order_index.get(name)
        if index is None:  # not a candidate for the edge (no default hosts): its rank orders nothing
            self._assembly.ownership[name] = after
            return True
        entry = (after.rank, name)
        if (index > 0 and not order[index - 1] < entry) or (index + 1 < len(order) and not entry < order[index + 1]):
            return False
        order[index] = entry
        self._assembly.ownership[name] = after
        return True

    def _reassemble(self, old: Mesh | None, changes: _Changes) -> MeshUpdate:
        if old is not None and self._assembly is not None:
            update = self._with_new_settings(old, self._assembly, changes)
            if update is not None:
                return update
        parse_problems = list(chain.from_iterable(self._parse_problems.values()))
        clusters_of = {arn: live.clusters.keys() for arn, live in self._task_definitions.items()}
        # A name whose claims this view did not touch keeps its ownership and its endpoint set.
        kept = self._assembly.ownership if self._assembly is not None else {}
        touched = changes.names

        def ownership_of(name: str, claims: list[Claim]) -> Ownership:
            found = kept.get(name)
            return found if found is not None and name not in touched else resolve(name, claims)

        def endpoints_of(name: str, accepted: tuple[Claim, ...]) -> tuple[Endpoint, ...]:
            return self._endpoints_of(name, accepted)

        assembly = assemble(
            self._claims, parse_problems, self._limits, self._host_rule, clusters_of,
            resource_check=self._resource_check, ownership_of=ownership_of, endpoints_of=endpoints_of,
        )
        for name in [n for n in self._endpoint_sets if n not in assembly.ownership]:
            del self._endpoint_sets[name]
        services, problems = assembly.services, assembly.problems
        if old is None:
            mesh = Mesh(services=services, problems=problems)
        else:
            # Services equal to their previous version keep the previous object (and so do the problems).
            services = tuple(_previous_if_equal(old.by_name.get(s.name), s) for s in services)
            problems = old.problems if old.problems == problems else problems
            if len(services) == len(old.services) and all(a is b for a, b in zip(services, old.services)):
                mesh = Mesh.with_routes_of(old, services, {}, problems)
            else:
                mesh = Mesh(services=services, problems=problems)
        self._assembly = assembly
        self._positions = {s.name: i for i, s in enumerate(mesh.services)}
        self._order_index = {name: i for i, (_, name) in enumerate(assembly.order)}
        delta = mesh_delta(old, mesh)
        return MeshUpdate(old if old is not None and delta.empty else mesh, delta)

    def _with_new_settings(self, old: Mesh, assembly: Assembly, changes: _Changes) -> MeshUpdate | None:
        """The mesh after a change of the touched services' settings that leaves every decision at
        the edge as it was (the same rank, route, protocol and route size: a new revision with
        another retry, timeout or balancing label): only those services are assembled again, and
        the problems that name them written again. None when the change is more than that."""
        fresh: dict[str, tuple[Ownership, Candidate, tuple[ServiceProblem, ...]]] = {}
        for name in sorted(changes.names):
            before = assembly.candidates.get(name)
            claims = self._claims.get(name)
            if before is None or claims is None:
                return None  # a name that comes or goes, or was refused before the edge
            ownership = resolve(name, list(claims.values()))
            clusters_of = {c.task_definition.arn: self._task_definitions[c.task_definition.arn].clusters.keys() for c in ownership.accepted}
            found, problems = candidate(name, ownership, self._claims, self._host_rule, clusters_of, self._resource_check, self._endpoints_of)
            if found is None or not _same_at_the_edge(before, found):
                return None
            fresh[name] = (ownership, found, problems)
        if not fresh:
            return None
        parse_problems = tuple(chain.from_iterable(self._parse_problems.values()))
        services = list(old.services)
        replaced: dict[str, Service] = {}
        endpoints, settings = set(), set()
        for name, (ownership, found, problems) in fresh.items():
            assembly.ownership[name] = ownership
            assembly.candidates[name] = found
            assembly.candidate_problems[name] = problems
            position = self._positions.get(name)
            if position is None:
                continue  # refused at the edge, as before
            service, assembly.target_problems[name] = resolved_targets(found.service, found.declaration, assembly.served)
            assembly.upstream_problems[name] = unknown_upstreams(service, found.declaration, assembly.served)
            was = services[position]
            service = _previous_if_equal(was, service)
            if service is not was:
                services[position] = replaced[name] = service
                if not same_settings(was, service):
                    settings.add(name)
                elif was.endpoints != service.endpoints:
                    endpoints.add(name)
        # The decisions stand; their problems name these services' task definitions anew.
        for name in {n for name in fresh for n in (name, *assembly.referrers.get(name, ()))}:
            admission = assembly.admissions.get(name)
            if admission is not None:
                assembly.admission_problems[name] = admission_problems_of(admission, assembly.candidates[name], assembly.candidates)
        assembly.parse_problems = parse_problems
        problems = assembly.all_problems()
        problems = old.problems if problems == old.problems else problems
        assembly.problems = problems
        mesh = Mesh.with_routes_of(old, tuple(services), replaced, problems)
        assembly.services = mesh.services
        delta = MeshDelta(endpoints=frozenset(endpoints), settings=frozenset(settings), problems=problems is not old.problems)
        return MeshUpdate(old if delta.empty else mesh, delta, assembled=False)

    def _count(self, old: Mesh | None, old_positions: dict[str, int], update: MeshUpdate) -> None:
        """Keep the endpoint counts by health up to date from the delta."""
        names: Iterable[str] = update.delta.services if old is not None else self._positions
        for name in names:
            if old is not None and (position := old_positions.get(name)) is not None:
                _tally(self._health, old.services[position].endpoints, -1)
            if (position := self._positions.get(name)) is not None:
                _tally(self._health, update.mesh.services[position].endpoints, 1)


def _same_at_the_edge(before: Candidate, after: Candidate) -> bool:
    """True when admitting `after` in place of `before` decides what it decided for every service:
    the same place in the established order, match, hosts, port, protocol and route size, and no
    per-revision subsets (they come and go with the endpoints)."""
    old, new = before.service, after.service
    return (
        before.rank == after.rank
        and old.route == new.route
        and old.protocol == new.protocol
        and old.newest_revision_weight is None
        and new.newest_revision_weight is None
        and route_bytes(old) == route_bytes(new)
    )


def _arn(task: Task) -> str:
    return task.arn


def _with_endpoints(service: Service, endpoints: tuple[Endpoint, ...]) -> Service:
    return dataclasses.replace(service, endpoints=endpoints)


def _previous_if_equal(previous: Service | None, service: Service) -> Service:
    return previous if previous is not None and previous == service else service


def _tally(counts: dict[EndpointHealth, int], endpoints: Iterable[Endpoint], sign: int) -> None:
    for endpoint in endpoints:
        counts[endpoint.health] += sign
