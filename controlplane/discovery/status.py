"""How discovery of one cluster is going; read by the admin API, the metrics and the logs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping


@dataclass
class ClusterSyncStatus:
    cluster: str
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    last_duration_seconds: float | None = None
    last_api_calls: Mapping[str, int] | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    # "resync" (a full read), "events" (changes named by events) or "health" (a health refresh):
    # what last_api_calls paid for.
    last_kind: str = "resync"
    events_applied: int = 0
    api_calls_total: dict[str, int] = field(default_factory=dict)

    def staleness_seconds(self, now: float | None = None) -> float | None:
        if self.last_success_at is None:
            return None
        return (now or time.time()) - self.last_success_at
