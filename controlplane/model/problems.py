"""Problems found in one container's labels, and how user text is shown in them. Pure.

Label names and values come from whoever registered the task definition: they may be huge, hold
control characters or lone surrogates (which protobuf and UTF-8 refuse). Every piece of them that
reaches a problem goes through `shown`/`escaped` first.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.model.mesh import ProblemKind

SHOWN_CHARS = 80


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def escaped(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` shortened to about `limit` characters, non-printable characters as escapes."""
    return repr(_shortened(text, limit))[1:-1]


def shown(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` shortened and escaped, in quotes, for a message."""
    return repr(_shortened(text, limit))


@dataclass(frozen=True, slots=True)
class LabelProblem:
    """A problem with one label of one container; `service` is set when the declaration it belongs
    to names a valid service."""

    label: str
    message: str
    kind: ProblemKind
    severity: str = "error"
    value: str | None = None
    service: str | None = None
