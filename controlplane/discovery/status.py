"""How discovery of one cluster is going; read by the admin API, the metrics and the logs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping


@dataclass
class ClusterSyncStatus:
    cluster: str
    last_success_at: float | None = None
    last_duration_seconds: float | None = None
    last_api_calls: Mapping[str, int] | None = None
    # Every read's calls since start, by operation: the admin API's status shows them.
    api_calls_total: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    consecutive_failures: int = 0

    def staleness_seconds(self, now: float | None = None) -> float | None:
        if self.last_success_at is None:
            return None
        return (now or time.time()) - self.last_success_at
