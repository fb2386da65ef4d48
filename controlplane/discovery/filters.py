"""Which tasks discovery considers. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks discovery considers: by ECS service name and by task definition family (regexes,
    matched in full). A task must pass both; an unset pattern lets everything through."""

    services: str | None = None
    families: str | None = None

    def accepts(self, raw: Mapping[str, Any]) -> bool:
        if self.services:
            group = str(raw.get("group", ""))
            service = group.split(":", 1)[1] if group.startswith("service:") else ""
            if not re.fullmatch(self.services, service):
                return False
        if self.families:
            family = str(raw.get("taskDefinitionArn", "")).rsplit("/", 1)[-1].rsplit(":", 1)[0]
            if not re.fullmatch(self.families, family):
                return False
        return True
