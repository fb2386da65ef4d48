"""Which task-definition family a service name belongs to, and which task definitions serve it. Pure.

A service name belongs to one family: the one whose tasks (declaring it) started first, by ECS's
`startedAt`; families with no started task come after, then the family name breaks ties. Tasks of
other families join only when they declare exactly the same settings; otherwise they are refused.
Within the owning family, the highest revision's settings are used (revisions of one family are
ordered; revisions of two families are not).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane.discovery.state import Task, TaskDefinition
from controlplane.model.labels import ServiceDeclaration
from controlplane.model.mesh import Endpoint, ProblemKind, ServiceProblem
from controlplane.model.problems import shown

# Established order: (0, first startedAt) for a family with a started task, (1, 0.0) without one.
Rank = tuple[int, float]
NOT_STARTED: Rank = (1, 0.0)


@dataclass
class Claim:
    """One task definition's declaration of a service, with the endpoints of its tasks."""

    task_definition: TaskDefinition
    declaration: ServiceDeclaration
    endpoints: dict[tuple[str, int], Endpoint] = field(default_factory=dict)
    first_started: float | None = None

    def saw(self, task: Task) -> None:
        if task.started_at is not None and (self.first_started is None or task.started_at < self.first_started):
            self.first_started = task.started_at

    @property
    def family(self) -> str:
        return self.task_definition.family


def rank(claims: list[Claim]) -> Rank:
    started = [c.first_started for c in claims if c.first_started is not None]
    return (0, min(started)) if started else NOT_STARTED


@dataclass(frozen=True)
class Ownership:
    """Who serves one service name: the winning declaration, every accepted claim, the problems."""

    winner: Claim
    accepted: tuple[Claim, ...]
    rank: Rank
    problems: tuple[ServiceProblem, ...]


def differences(first: ServiceDeclaration, second: ServiceDeclaration) -> list[str]:
    """The settings (by label family) in which two declarations differ."""
    names = []
    for what, a, b in (
        ("protocol", first.protocol, second.protocol),
        ("port", first.container_port, second.container_port),
        ("route", first.route, second.route),
        ("traffic policy", first.policy, second.policy),
        ("route.weights", first.split, second.split),
        ("route.newest-revision-weight", first.newest_revision_weight, second.newest_revision_weight),
        ("upstreams", first.upstreams, second.upstreams),
    ):
        if a != b:
            names.append(what)
    return names


def resolve(name: str, claims: list[Claim]) -> Ownership:
    """The owning family of `name`, its winning declaration and the claims that may serve it."""
    by_family: dict[str, list[Claim]] = {}
    for claim in claims:
        by_family.setdefault(claim.family, []).append(claim)
    owner = min(by_family, key=lambda family: (rank(by_family[family]), family))
    own = by_family[owner]
    winner = max(own, key=lambda c: (c.task_definition.revision, c.declaration.container))
    winner_td = winner.task_definition.display_name
    accepted: list[Claim] = []
    problems: list[ServiceProblem] = []
    for claim in sorted(claims, key=lambda c: (c.family, c.task_definition.revision, c.declaration.container)):
        declaration, td = claim.declaration, claim.task_definition.display_name
        where = f"task definition {td}, container {shown(declaration.container)}"
        label = declaration.label_prefix + "service"
        diff = differences(winner.declaration, declaration)
        if claim.family == owner:
            accepted.append(claim)
            if diff:
                problems.append(
                    ServiceProblem(
                        service=name, task_definition=td, container=declaration.container, label=label, value=name,
                        severity="warning", kind=ProblemKind.REVISION_MISMATCH,
                        message=(
                            f"{where}: service {shown(name)} is declared with a different {', '.join(diff)} than in "
                            f"{winner_td}; the highest revision's settings are used"
                        ),
                    )
                )
        elif not diff:
            accepted.append(claim)
        else:
            problems.append(
                ServiceProblem(
                    service=name, task_definition=td, container=declaration.container, label=label, value=name,
                    kind=ProblemKind.FAMILY_CONFLICT,
                    message=(
                        f"{where}: label {label}={shown(name)}: service {shown(name)} belongs to task definition family "
                        f"{shown(owner)} ({winner_td}), whose tasks started first; family {shown(claim.family)} declares it "
                        f"with a different {', '.join(diff)}, so its tasks are not added. Use another service name, or "
                        f"exactly the settings of {winner_td}"
                    ),
                )
            )
    return Ownership(winner=winner, accepted=tuple(accepted), rank=rank(own), problems=tuple(problems))
