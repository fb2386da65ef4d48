"""Behaviour of the route guide server, chosen through environment variables.

The local ECS passes these to a task like any other container environment, so a
demo or test can make one task slow, flaky or unhealthy without code changes.

``ROUTEGUIDE_LATENCY_MS``
    Extra latency in milliseconds (float, >= 0, default 0), added before every
    reply message: once per unary or client-streaming call, once per streamed
    message for server-streaming and bidirectional calls.
``ROUTEGUIDE_FAIL_FRACTION``
    Fraction of calls that fail (float, 0..1, default 0). Decided once per call,
    with a random generator seeded per process (see ``ROUTEGUIDE_SEED``).
``ROUTEGUIDE_FAIL_STATUS``
    gRPC status name the failing calls end with (default ``UNAVAILABLE``), for
    example ``RESOURCE_EXHAUSTED`` or ``INTERNAL``. ``OK`` is not allowed.
``ROUTEGUIDE_HEALTH``
    Initial ``grpc.health.v1`` status, ``SERVING`` (default) or ``NOT_SERVING``,
    reported for the server ("") and for ``routeguide.RouteGuide``.
``ROUTEGUIDE_HEALTH_FILE``
    Optional path polled every 0.2 s; its content (``SERVING`` or
    ``NOT_SERVING``, surrounding whitespace and case ignored) replaces the health
    status at run time. A missing or unreadable file, or other content, leaves
    the status as it is.
``ROUTEGUIDE_SHUTDOWN_GRACE_S``
    Seconds in-flight calls get to finish after SIGTERM (float, >= 0, default 5).
``ROUTEGUIDE_SHUTDOWN_DELAY_S``
    Seconds the server keeps serving after SIGTERM, health NOT_SERVING, before it stops
    (float, >= 0, default 0: stop at once). What an app does when whoever routes to it learns
    of the stop a moment later (no load balancer deregistration delay): gRPC C-core's stop()
    resets calls that arrive as it stops.
``ROUTEGUIDE_SEED``
    Optional integer seed for the failure generator, for reproducible runs.
    Default: derived from the process id and the clock.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import grpc


class BehaviourError(ValueError):
    """An environment variable of the route guide holds an invalid value."""


class HealthStatus(str, Enum):
    """The two ``grpc.health.v1`` statuses the route guide reports."""

    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"

    @classmethod
    def parse(cls, text: str) -> HealthStatus | None:
        """The status named by ``text`` (case and whitespace ignored), or None."""
        try:
            return cls(text.strip().upper())
        except ValueError:
            return None


@dataclass(frozen=True)
class Behaviour:
    """How the server misbehaves on purpose; parsed once at start-up."""

    latency_s: float = 0.0
    fail_fraction: float = 0.0
    fail_status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    initial_health: HealthStatus = HealthStatus.SERVING
    health_file: Path | None = None
    shutdown_grace_s: float = 5.0
    shutdown_delay_s: float = 0.0
    seed: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Behaviour:
        """Read and validate the ``ROUTEGUIDE_*`` variables; raise BehaviourError on bad values."""
        env = os.environ if env is None else env
        latency_ms = _float(env, "ROUTEGUIDE_LATENCY_MS", default=0.0, low=0.0, high=None,
                            expected="a number of milliseconds >= 0")
        fail_fraction = _float(env, "ROUTEGUIDE_FAIL_FRACTION", default=0.0, low=0.0, high=1.0,
                               expected="a number between 0 and 1")
        grace = _float(env, "ROUTEGUIDE_SHUTDOWN_GRACE_S", default=5.0, low=0.0, high=None,
                       expected="a number of seconds >= 0")
        delay = _float(env, "ROUTEGUIDE_SHUTDOWN_DELAY_S", default=0.0, low=0.0, high=None,
                       expected="a number of seconds >= 0")
        return cls(
            latency_s=latency_ms / 1000.0,
            fail_fraction=fail_fraction,
            fail_status=_status(env),
            initial_health=_health(env),
            health_file=_health_file(env),
            shutdown_grace_s=grace,
            shutdown_delay_s=delay,
            seed=_seed(env),
        )

    def as_log_fields(self) -> dict[str, object]:
        """The behaviour as plain values for a structured log event."""
        return {
            "latency_ms": self.latency_s * 1000.0,
            "fail_fraction": self.fail_fraction,
            "fail_status": self.fail_status.name,
            "initial_health": self.initial_health.value,
            "health_file": str(self.health_file) if self.health_file else None,
            "shutdown_grace_s": self.shutdown_grace_s,
            "shutdown_delay_s": self.shutdown_delay_s,
        }


class FailureInjector:
    """Decides which calls fail, with a generator seeded once per process."""

    def __init__(self, fraction: float, seed: int | None = None) -> None:
        self._fraction = fraction
        self._random = random.Random(seed if seed is not None else (os.getpid() << 32) ^ time.time_ns())
        self._lock = threading.Lock()  # random.Random is not documented as thread-safe

    def should_fail(self) -> bool:
        """True for about ``fraction`` of the calls."""
        if self._fraction <= 0.0:
            return False
        if self._fraction >= 1.0:
            return True
        with self._lock:
            return self._random.random() < self._fraction


def _float(env: Mapping[str, str], name: str, *, default: float, low: float, high: float | None,
           expected: str) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BehaviourError(f'{name}="{raw}": expected {expected}') from None
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        raise BehaviourError(f'{name}="{raw}": expected {expected}')
    return value


def _status(env: Mapping[str, str]) -> grpc.StatusCode:
    raw = env.get("ROUTEGUIDE_FAIL_STATUS")
    if raw is None or raw.strip() == "":
        return grpc.StatusCode.UNAVAILABLE
    names = [code.name for code in grpc.StatusCode if code is not grpc.StatusCode.OK]
    code = grpc.StatusCode.__members__.get(raw.strip().upper())
    if code is None or code is grpc.StatusCode.OK:
        raise BehaviourError(f'ROUTEGUIDE_FAIL_STATUS="{raw}": expected a gRPC status name other than OK, one of '
                             + ", ".join(names))
    return code


def _health(env: Mapping[str, str]) -> HealthStatus:
    raw = env.get("ROUTEGUIDE_HEALTH")
    if raw is None or raw.strip() == "":
        return HealthStatus.SERVING
    status = HealthStatus.parse(raw)
    if status is None:
        raise BehaviourError(f'ROUTEGUIDE_HEALTH="{raw}": expected SERVING or NOT_SERVING')
    return status


def _health_file(env: Mapping[str, str]) -> Path | None:
    raw = env.get("ROUTEGUIDE_HEALTH_FILE")
    if raw is None or raw.strip() == "":
        return None
    path = Path(raw)
    if path.is_dir():
        raise BehaviourError(f'ROUTEGUIDE_HEALTH_FILE="{raw}": expected a file path, found a directory')
    return path


def _seed(env: Mapping[str, str]) -> int | None:
    raw = env.get("ROUTEGUIDE_SEED")
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BehaviourError(f'ROUTEGUIDE_SEED="{raw}": expected an integer') from None
