"""This replica's budget of ECS API requests: a token bucket every request (retries included)
waits on, and a count of them by operation, so an operator can keep the sum over replicas within
the account's shared limits (DescribeTasks and DescribeContainerInstances share one bucket, per
account and region). Blocking: requests are made from discovery's threads."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any, Callable

WINDOW_SECONDS = 60.0


class TokenBucket:
    """At most `rate` acquisitions a second on average and `burst` at once. Thread-safe: a caller
    reserves its token under the lock and sleeps outside it, so waiters keep their order."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket: expected rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting for it if need be; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


class RequestBudget:
    """Caps and counts the HTTP requests of boto3 clients (`attach`), by operation."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_request: Callable[[str, float], None] | None = None,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock=clock, sleep=sleep)
        self._clock = clock
        self._on_request = on_request or (lambda operation, waited: None)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.waited_seconds = 0.0
        # Times of the requests of the last minute; the bucket bounds how many there can be.
        self._recent: deque[float] = deque(maxlen=int(rate * WINDOW_SECONDS) + burst + 1)

    def attach(self, client: Any) -> None:
        """Make every request `client` sends (each retry too) wait for a token and count."""
        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-send.{service}", self._before_send)

    def _before_send(self, event_name: str = "", **_: Any) -> None:
        # event_name: "before-send.ecs.DescribeTasks". Returning None lets botocore send.
        self.spend(event_name.rsplit(".", 1)[-1])

    def spend(self, operation: str) -> float:
        """One request of `operation`: wait for the budget, count it; returns the seconds waited."""
        waited = self.bucket.acquire()
        with self._lock:
            self.requests[operation] += 1
            self.waited_seconds += waited
            self._recent.append(self._clock())
        self._on_request(operation, waited)
        return waited

    def per_minute(self) -> int:
        """Requests in the last minute."""
        cutoff = self._clock() - WINDOW_SECONDS
        with self._lock:
            while self._recent and self._recent[0] < cutoff:
                self._recent.popleft()
            return len(self._recent)

    def by_operation(self) -> dict[str, int]:
        with self._lock:
            return dict(self.requests)
