"""Injected errors, latency and request-rate throttling, per service and operation.

Throttling behaves like the real services: a token bucket per operation, and a request over
the rate gets ``ThrottlingException: Rate exceeded`` (EC2: ``RequestLimitExceeded``).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

# Error code -> HTTP status, as the services answer them.
ERROR_STATUS = {
    "ThrottlingException": 400,
    "RequestLimitExceeded": 503,
    "ServerException": 500,
    "ServiceUnavailableException": 503,
    "InternalFailure": 500,
    "AccessDeniedException": 400,
}


@dataclass
class Fault:
    """Fail (with probability ``rate``) and/or delay calls to matching operations."""

    id: int
    service: str = "ecs"  # ecs | ec2 | sqs | ssm | *
    operation: str = "*"
    error: str | None = "ServerException"
    rate: float = 1.0
    latency: float = 0.0
    until: float | None = None  # wall clock; None = until cleared
    hits: int = 0

    def matches(self, service: str, operation: str, now: float) -> bool:
        return (
            (self.until is None or now < self.until)
            and self.service in ("*", service)
            and self.operation in ("*", operation)
        )


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    at: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Outcome:
    """What to do with one request: wait ``latency`` seconds, then fail with ``error`` if set."""

    latency: float = 0.0
    error: str | None = None
    message: str = ""

    @property
    def status(self) -> int:
        return ERROR_STATUS.get(self.error or "", 400)


class FaultInjector:
    """Thread-safe registry of faults and throttles, consulted by the HTTP front for each request."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._random = random.Random(seed)
        # (service, operation or "*") -> (rate per second, burst)
        self._limits: dict[tuple[str, str], tuple[float, float]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.throttled = 0

    def inject(
        self,
        *,
        operation: str = "*",
        error: str | None = "ServerException",
        rate: float = 1.0,
        latency: float = 0.0,
        duration: float | None = None,
        service: str = "ecs",
    ) -> int:
        """Add a fault; returns its id. ``error=None`` with ``latency`` only slows calls down."""
        fault = Fault(
            id=next(self._ids), service=service, operation=operation, error=error, rate=max(0.0, min(1.0, rate)),
            latency=max(0.0, latency), until=time.time() + duration if duration else None,
        )
        with self._lock:
            self._faults.append(fault)
        return fault.id

    def clear(self, fault_id: int | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if fault_id is not None and f.id != fault_id]

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    def throttle(self, rate: float | None, burst: float | None = None, *, operation: str = "*", service: str = "ecs") -> None:
        """Limit each matching operation to ``rate`` calls per second (burst ``burst``); None lifts it."""
        with self._lock:
            key = (service, operation)
            if rate is None or rate <= 0:
                self._limits.pop(key, None)
            else:
                self._limits[key] = (rate, burst if burst and burst >= 1 else max(1.0, rate))
            self._buckets.clear()

    def limits(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {f"{s}:{o}": {"rate": r, "burst": b} for (s, o), (r, b) in self._limits.items()}

    def check(self, service: str, operation: str) -> Outcome:
        """Decide the fate of one request (called before the operation runs)."""
        now = time.time()
        with self._lock:
            latency = 0.0
            for fault in self._faults:
                if not fault.matches(service, operation, now):
                    continue
                latency = max(latency, fault.latency)
                if fault.error and self._random.random() < fault.rate:
                    fault.hits += 1
                    return Outcome(latency, fault.error, f"Injected fault {fault.id}: {fault.error}")
            limit = self._limits.get((service, operation)) or self._limits.get((service, "*"))
            if limit is not None:
                bucket = self._buckets.get((service, operation))
                if bucket is None:
                    bucket = self._buckets[(service, operation)] = _Bucket(limit[0], limit[1], limit[1])
                if not bucket.take():
                    self.throttled += 1
                    code = "RequestLimitExceeded" if service == "ec2" else "ThrottlingException"
                    return Outcome(latency, code, "Rate exceeded")
            return Outcome(latency)
