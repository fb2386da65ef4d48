"""Labels under the prefix that we do not read: typos, wrong case, indexed labels without their
service, labels of a container that declares no service. Each is a warning with a suggestion. Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from controlplane.model.grammar import is_service_name
from controlplane.model.mesh import ProblemKind
from controlplane.model.problems import LabelProblem, escaped, shown
from controlplane.model.schema import DEFAULT_PREFIX, MAX_INDEX, SPECS, family_of

_INDEXED = re.compile(r"([0-9]{1,3})\.(.*)", re.DOTALL)
# Suggestions are looked for only in names of reasonable length (difflib is quadratic).
_MAX_SUGGESTED_CHARS = 100


def _under_prefix(key: str, prefix: str) -> bool:
    return key.lower().startswith(prefix.lower())


def _split_index(rest: str) -> tuple[int | None, str]:
    """`2.route.hosts` -> (2, `route.hosts`); `route.hosts` -> (None, `route.hosts`)."""
    match = _INDEXED.fullmatch(rest)
    if match is None:
        return None, rest
    return int(match.group(1)), match.group(2)


def _suggestion(index: int | None, name: str, prefix: str) -> str | None:
    if len(name) > _MAX_SUGGESTED_CHARS:
        return None
    lowered = name.lower()
    if lowered in SPECS:
        guess = lowered
    else:
        close = difflib.get_close_matches(lowered, list(SPECS), n=1, cutoff=0.6)
        if not close:
            return None
        guess = close[0]
    where = f"{index}." if index is not None and 1 <= index <= MAX_INDEX else ""
    return f"{prefix}{where}{guess}"


def unknown_label_problems(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[LabelProblem]:
    """A warning for every label under the prefix (any case) that has no effect."""
    problems = []
    for key in sorted(labels):
        if not _under_prefix(key, prefix):
            continue
        rest = key[len(prefix):]
        index, name = _split_index(rest)
        exact = key.startswith(prefix)
        declared = f"{prefix}{index}.service" if index is not None else prefix + "service"
        service = labels.get(declared, "").strip()
        owner = service if is_service_name(service) else None
        known = exact and (name in SPECS or family_of(name) is not None) and (index is None or 1 <= index <= MAX_INDEX)
        if known:
            if declared in labels:
                continue  # a label we read
            message = f"has no effect: {declared} is not set, so this container declares no service here"
        else:
            guess = _suggestion(index, name, prefix)
            if guess is not None and guess.lower() == key.lower():
                message = f"unknown label, ignored: did you mean {guess}? (label names are case-sensitive)"
            elif guess is not None:
                message = f"unknown label, ignored: did you mean {guess}?"
            else:
                message = "unknown label, ignored (docs/labels.md lists the labels we read)"
        problems.append(
            LabelProblem(
                label=escaped(key),
                message=f"label {escaped(key)}={shown(labels[key])}: {message}",
                kind=ProblemKind.NO_EFFECT if known else ProblemKind.UNKNOWN_LABEL,
                severity="warning",
                value=escaped(labels[key]),
                service=owner,
            )
        )
    return problems


def unknown_labels(labels: Mapping[str, str], prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Labels under the prefix (any case) that we do not read, or that have no effect."""
    return sorted({p.label for p in unknown_label_problems(labels, prefix)})
