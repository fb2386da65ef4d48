"""Whether the config we serve is current: pipeline failures and the age of the view of ECS.

Discovery fails static: when a read, a mesh build or a publish fails, proxies keep the last good
config. That is right for a while and wrong forever, so the control plane says it is `degraded` at
once (admin API, `controlplane status`) and stops being ready (health NOT_SERVING) when the served
config has not been confirmed against ECS for `window_seconds`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Protocol

# Where the pipeline can fail: the discovery loop itself, building the mesh, publishing it.
STAGES = ("discovery", "build", "publish")


class FirstView(Protocol):
    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class StageFailure:
    """A stage failing since `since`, `consecutive` times in a row; `error` is the latest."""

    stage: str
    error: str
    since: float
    last: float
    consecutive: int = 1


class Readiness:
    """Failures by stage, and the readiness they imply. Written by the process wiring, read by the
    admin API and the health check."""

    def __init__(
        self,
        window_seconds: float,
        first_view: FirstView,
        view_confirmed_at: Callable[[], Iterable[float | None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window_seconds = window_seconds
        self._first_view = first_view
        self._view_confirmed_at = view_confirmed_at
        self._clock = clock
        self._failing: dict[str, StageFailure] = {}
        self.failures_total = 0

    def failed(self, stage: str, error: BaseException) -> StageFailure:
        now = self._clock()
        text = f"{type(error).__name__}: {error}"
        previous = self._failing.get(stage)
        failure = (
            replace(previous, error=text, last=now, consecutive=previous.consecutive + 1)
            if previous
            else StageFailure(stage=stage, error=text, since=now, last=now)
        )
        self._failing[stage] = failure
        self.failures_total += 1
        return failure

    def succeeded(self, *stages: str) -> list[StageFailure]:
        """The stages succeeded again; returns the failures this ends."""
        return [failure for stage in stages if (failure := self._failing.pop(stage, None)) is not None]

    @property
    def failures(self) -> list[StageFailure]:
        return [self._failing[stage] for stage in STAGES if stage in self._failing]

    @property
    def degraded(self) -> bool:
        return bool(self._failing)

    def confirmed_at(self) -> float | None:
        """When the served config was last known to match ECS: the oldest cluster view, or the
        start of a failure that still lasts, whichever is earlier. None before the first view."""
        if not self._first_view.is_set():
            return None
        # A cluster not read yet (one just discovered) is held back from the config, not part of it.
        times = [at for at in self._view_confirmed_at() if at is not None]
        if not times:
            return None
        return min(times + [failure.since for failure in self._failing.values()])

    def config_age_seconds(self) -> float | None:
        at = self.confirmed_at()
        return None if at is None else max(0.0, self._clock() - at)

    def ready(self) -> bool:
        age = self.config_age_seconds()
        return age is not None and age <= self.window_seconds

    def reason(self) -> str:
        """Why not ready (or "" when ready), for logs."""
        age = self.config_age_seconds()
        if age is None:
            return "no complete view of ECS yet"
        if age <= self.window_seconds:
            return ""
        causes = "; ".join(f"{f.stage}: {f.error}" for f in self.failures) or "reads of ECS failing"
        return f"served config unconfirmed for {age:.0f}s (> {self.window_seconds:.0f}s): {causes}"
