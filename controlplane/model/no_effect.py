"""Labels of a valid declaration that change nothing, given the others: each is a warning. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from controlplane.model.mesh import ProblemKind
from controlplane.model.problems import LabelProblem, escaped, shown

if TYPE_CHECKING:
    from controlplane.model.labels import ServiceDeclaration

_ROUTE_LABELS = (
    "route.hosts", "route.prefix", "route.method", "route.headers", "route.priority", "route.weights",
    "route.newest-revision-weight", "jwt.issuer",
)
_HEALTH_LABELS = ("health.interval", "health.timeout", "health.healthy-threshold", "health.unhealthy-threshold")
_OUTLIER_SETTINGS = ("outlier.interval", "outlier.ejection-time", "outlier.max-ejection-percent")
_FAILURE_PERCENT_SETTINGS = ("outlier.failure-min-requests", "outlier.failure-min-tasks")
_RETRY_LABELS = ("retry.on", "retry.per-try-timeout", "retry.budget")


def no_effect_problems(declaration: ServiceDeclaration, labels: Mapping[str, str]) -> list[LabelProblem]:
    """Warnings for the labels of `declaration` that have no effect."""
    prefix, set_, policy = declaration.label_prefix, declaration.labels_set, declaration.policy
    found: list[tuple[str, str]] = []
    if not declaration.route.enabled and declaration.protocol.is_http:  # a tcp service's sidecars use its weights
        found += [(n, f"{prefix}route.enabled=false gives the service no route of its own") for n in _ROUTE_LABELS if n in set_]
    elif "route.weights" in set_ and "route.newest-revision-weight" in set_:
        found.append(("route.newest-revision-weight", f"{prefix}route.weights decides where the calls go"))
    if not policy.health_check.enabled:
        found += [(n, f"{prefix}health.check is none") for n in _HEALTH_LABELS if n in set_]
    if not policy.outlier_detection.enabled:
        trigger = f"no outlier trigger is set ({prefix}outlier.consecutive-5xx, -gateway-errors, -local-origin-failures or failure-percent)"
        found += [(n, trigger) for n in _OUTLIER_SETTINGS if n in set_]
    if policy.outlier_detection.failure_percent is None:
        found += [(n, f"{prefix}outlier.failure-percent is not set") for n in _FAILURE_PERCENT_SETTINGS if n in set_]
    if policy.retry.num_retries == 0:
        found += [(n, f"{prefix}retry.attempts is 0") for n in _RETRY_LABELS if n in set_]
    elif policy.retry.budget_percent is not None and "circuit-breaker.max-retries" in set_:
        found.append(("circuit-breaker.max-retries", f"{prefix}retry.budget replaces it"))
    return [
        LabelProblem(
            label=prefix + name,
            message=f"label {prefix}{name}={shown(labels.get(prefix + name, ''))}: has no effect: {reason}",
            kind=ProblemKind.NO_EFFECT,
            severity="warning",
            value=escaped(labels.get(prefix + name, "")),
            service=declaration.name,
        )
        for name, reason in found
    ]
