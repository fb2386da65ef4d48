"""Client helpers for the demo and tests: count who answers, exercise every RPC kind, run load.

Every helper dials one ``host:port`` target over ONE channel, which grpcio keeps
on one HTTP/2 connection, and only loopback targets are accepted (ValueError otherwise).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType


import grpc

from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.loopback import require_loopback_target

METHODS = ("GetFeature", "ListFeatures", "RecordRoute", "RouteChat")

# A channel of its own (no global subchannel sharing) is one TCP connection; and no
# HTTP proxy from the environment may ever see loopback demo traffic.
_CHANNEL_OPTIONS = (
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.enable_http_proxy", 0),
)

_Caller = Callable[[pb_grpc.RouteGuideStub, float], pb.ServedBy]


@dataclass(frozen=True)
class CallTally:
    """Outcome of a series of calls: answers per ``served_by.address`` and failures per status code."""

    by_address: Mapping[str, int] = field(default_factory=dict)
    by_task_id: Mapping[str, int] = field(default_factory=dict)
    failures: Mapping[grpc.StatusCode, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def succeeded(self) -> int:
        return sum(self.by_address.values())

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def total(self) -> int:
        return self.succeeded + self.failed


class _TallyRecorder:
    """Thread-safe accumulation of call outcomes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_address: Counter[str] = Counter()
        self._by_task_id: Counter[str] = Counter()
        self._failures: Counter[grpc.StatusCode] = Counter()
        self._started = time.monotonic()

    def success(self, served_by: pb.ServedBy) -> None:
        with self._lock:
            self._by_address[served_by.address] += 1
            self._by_task_id[served_by.task_id] += 1

    def failure(self, code: grpc.StatusCode) -> None:
        with self._lock:
            self._failures[code] += 1

    def snapshot(self) -> CallTally:
        with self._lock:
            return CallTally(
                by_address=MappingProxyType(dict(self._by_address)),
                by_task_id=MappingProxyType(dict(self._by_task_id)),
                failures=MappingProxyType(dict(self._failures)),
                elapsed_s=time.monotonic() - self._started,
            )


def open_channel(target: str) -> grpc.Channel:
    """An insecure channel to a loopback ``host:port`` with a connection of its own."""
    require_loopback_target(target)
    return grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)


def call_once(stub: pb_grpc.RouteGuideStub, method: str = "GetFeature", *, timeout: float = 5.0) -> pb.ServedBy:
    """One call of ``method`` (any of METHODS); return who served it. Raises grpc.RpcError."""
    try:
        caller = _CALLERS[method]
    except KeyError:
        raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}") from None
    return caller(stub, timeout)


def count_calls(
    target: str, n: int, *, timeout: float = 5.0, method: str = "GetFeature", channel_factory: Callable[[str], grpc.Channel] = open_channel
) -> CallTally:
    """Make ``n`` sequential calls over one channel (``channel_factory``: plaintext by default) and tally who answered and what failed."""
    if method not in _CALLERS:
        raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    recorder = _TallyRecorder()
    with channel_factory(target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        for _ in range(n):
            _record(recorder, stub, method, timeout)
    return recorder.snapshot()


def exercise_all_kinds(target: str, *, timeout: float = 5.0) -> dict[str, pb.ServedBy]:
    """Call each of the four RPC kinds once over one channel; return the ServedBy per method name."""
    with open_channel(target) as channel:
        stub = pb_grpc.RouteGuideStub(channel)
        return {method: call_once(stub, method, timeout=timeout) for method in METHODS}


class LoadLoop:
    """Calls in a loop on a background thread over one channel, until max_calls, max_seconds or stop()."""

    def __init__(self, target: str, *, max_calls: int = 10_000, max_seconds: float = 60.0,
                 method: str = "GetFeature", timeout: float = 5.0, interval_s: float = 0.0) -> None:
        require_loopback_target(target)
        if method not in _CALLERS:
            raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
        if max_calls < 0 or max_seconds < 0 or interval_s < 0:
            raise ValueError("max_calls, max_seconds and interval_s must be >= 0")
        self._target = target
        self._max_calls = max_calls
        self._max_seconds = max_seconds
        self._method = method
        self._timeout = timeout
        self._interval_s = interval_s
        self._recorder = _TallyRecorder()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"routeguide-load-{target}", daemon=True)

    def start(self) -> LoadLoop:
        """Start the background thread; returns self for chaining."""
        self._recorder = _TallyRecorder()
        self._thread.start()
        return self

    def stop(self) -> CallTally:
        """Stop after the call in flight (if any) and return the final tally."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self._recorder.snapshot()

    def join(self, timeout: float | None = None) -> CallTally:
        """Wait for the loop to reach its bounds (or timeout) and return the tally so far."""
        self._thread.join(timeout)
        return self._recorder.snapshot()

    def tally(self) -> CallTally:
        """The tally so far, while the loop runs."""
        return self._recorder.snapshot()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> LoadLoop:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        deadline = time.monotonic() + self._max_seconds
        with open_channel(self._target) as channel:
            stub = pb_grpc.RouteGuideStub(channel)
            calls = 0
            while calls < self._max_calls and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                _record(self._recorder, stub, self._method, min(self._timeout, remaining))
                calls += 1
                if self._interval_s and self._stop.wait(self._interval_s):
                    break


def _record(recorder: _TallyRecorder, stub: pb_grpc.RouteGuideStub, method: str, timeout: float) -> None:
    try:
        recorder.success(call_once(stub, method, timeout=timeout))
    except grpc.RpcError as exc:
        recorder.failure(exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN)


def _get_feature(stub: pb_grpc.RouteGuideStub, timeout: float) -> pb.ServedBy:
    return stub.GetFeature(pb.Point(latitude=409146138, longitude=-746188906), timeout=timeout).served_by


def _list_features(stub: pb_grpc.RouteGuideStub, timeout: float) -> pb.ServedBy:
    rect = pb.Rectangle(lo=pb.Point(latitude=400000000, longitude=-750000000),
                        hi=pb.Point(latitude=420000000, longitude=-730000000))
    return _single_server([f.served_by for f in stub.ListFeatures(rect, timeout=timeout)], "ListFeatures")


def _record_route(stub: pb_grpc.RouteGuideStub, timeout: float) -> pb.ServedBy:
    points = iter([pb.Point(latitude=407838351 + i * 1000, longitude=-746143763) for i in range(3)])
    return stub.RecordRoute(points, timeout=timeout).served_by


def _route_chat(stub: pb_grpc.RouteGuideStub, timeout: float) -> pb.ServedBy:
    notes: Iterator[pb.RouteNote] = iter(
        [pb.RouteNote(location=pb.Point(latitude=0, longitude=i), message=f"note {i}") for i in range(3)])
    return _single_server([n.served_by for n in stub.RouteChat(notes, timeout=timeout)], "RouteChat")


def _single_server(served: list[pb.ServedBy], method: str) -> pb.ServedBy:
    """One stream is served by one task; anything else is a bug worth failing loudly on."""
    if not served:
        raise RuntimeError(f"{method} returned no messages")
    if any(s != served[0] for s in served[1:]):
        raise RuntimeError(f"{method} stream answered by several servers: {sorted({s.address for s in served})}")
    return served[0]


_CALLERS: dict[str, _Caller] = {
    "GetFeature": _get_feature,
    "ListFeatures": _list_features,
    "RecordRoute": _record_route,
    "RouteChat": _route_chat,
}
