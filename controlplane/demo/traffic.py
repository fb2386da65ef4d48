"""Steady gRPC traffic over one connection that records who answered, when, and what failed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.client import call_once, open_channel


@dataclass
class TrafficReport:
    calls: int = 0
    by_address: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)  # address -> wall-clock time of its first answer
    failures: list[tuple[float, str, str]] = field(default_factory=list)  # (time, status code, details)

    @property
    def failed(self) -> int:
        return len(self.failures)


class SteadyTraffic:
    """Unary calls in a loop over one channel, bounded in count and time, until stop()."""

    def __init__(
        self,
        target: str,
        *,
        interval: float = 0.01,
        max_calls: int = 20_000,
        max_seconds: float = 60.0,
        timeout: float = 5.0,
        channel_factory: Callable[[str], grpc.Channel] = open_channel,
    ) -> None:
        self._target = target
        self._channel_factory = channel_factory
        self._interval = interval
        self._max_calls = max_calls
        self._max_seconds = max_seconds
        self._timeout = timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._report = TrafficReport()
        self._thread = threading.Thread(target=self._run, name="steady-traffic", daemon=True)

    def start(self) -> SteadyTraffic:
        self._thread.start()
        return self

    def report(self) -> TrafficReport:
        with self._lock:
            return TrafficReport(
                calls=self._report.calls,
                by_address=Counter(self._report.by_address),
                first_seen=dict(self._report.first_seen),
                failures=list(self._report.failures),
            )

    def stop(self) -> TrafficReport:
        self._stop.set()
        self._thread.join(self._timeout + 5)
        return self.report()

    def wait_for_address(self, address: str, timeout: float) -> float | None:
        """Wall-clock time of the first answer from `address`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if address in self._report.first_seen:
                    return self._report.first_seen[address]
            time.sleep(0.01)
        return None

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        with self._channel_factory(self._target) as channel:
            stub = pb_grpc.RouteGuideStub(channel)
            while not self._stop.is_set() and time.monotonic() < deadline and self._report.calls < self._max_calls:
                try:
                    served_by = call_once(stub, "GetFeature", timeout=self._timeout)
                except grpc.RpcError as error:
                    with self._lock:
                        self._report.calls += 1
                        self._report.failures.append((time.time(), error.code().name, str(error.details())))
                else:
                    now = time.time()
                    with self._lock:
                        self._report.calls += 1
                        self._report.by_address[served_by.address] += 1
                        self._report.first_seen.setdefault(served_by.address, now)
                self._stop.wait(self._interval)
