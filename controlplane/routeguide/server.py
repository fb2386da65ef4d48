"""The route guide gRPC server: every reply names the task that served it."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from controlplane.proto import routeguide_pb2 as pb
from controlplane.proto import routeguide_pb2_grpc as pb_grpc
from controlplane.routeguide.behaviour import Behaviour, FailureInjector
from controlplane.routeguide.health import HealthFileWatcher, RouteGuideHealth
from controlplane.routeguide.loopback import join_host_port
from controlplane.routeguide.task import BindAddress, TaskIdentity

_LIST_FEATURES_STEPS = 5
# Initial metadata of every reply: the request metadata the task received, as a JSON list of [key, value].
RECEIVED_METADATA = "routeguide-received-metadata"


class RouteGuideServicer(pb_grpc.RouteGuideServicer):
    """The four RPC kinds, with the configured latency and failures."""

    def __init__(self, served_by: pb.ServedBy, behaviour: Behaviour) -> None:
        self._served_by = served_by
        self._behaviour = behaviour
        self._failures = FailureInjector(behaviour.fail_fraction, behaviour.seed)

    def GetFeature(self, request: pb.Point, context: grpc.ServicerContext) -> pb.Feature:
        self._maybe_fail(context)
        _echo_metadata(context)
        self._delay()
        return self._feature(request)

    def ListFeatures(self, request: pb.Rectangle, context: grpc.ServicerContext) -> Iterator[pb.Feature]:
        self._maybe_fail(context)
        _echo_metadata(context)
        for point in _diagonal(request.lo, request.hi):
            self._delay()
            yield self._feature(point)

    def RecordRoute(self, request_iterator: Iterable[pb.Point], context: grpc.ServicerContext) -> pb.RouteSummary:
        self._maybe_fail(context)
        _echo_metadata(context)
        started = time.monotonic()
        count, distance, previous = 0, 0.0, None
        for point in request_iterator:
            count += 1
            if previous is not None:
                distance += _distance_m(previous, point)
            previous = point
        self._delay()
        return pb.RouteSummary(point_count=count, feature_count=count, distance=int(distance),
                               elapsed_time=int(time.monotonic() - started), served_by=self._served_by)

    def RouteChat(self, request_iterator: Iterable[pb.RouteNote], context: grpc.ServicerContext) -> Iterator[pb.RouteNote]:
        self._maybe_fail(context)
        _echo_metadata(context)
        for note in request_iterator:
            self._delay()
            yield pb.RouteNote(location=note.location, message=note.message, served_by=self._served_by)

    def _feature(self, point: pb.Point) -> pb.Feature:
        return pb.Feature(name=f"feature at {point.latitude},{point.longitude}", location=point,
                          served_by=self._served_by)

    def _maybe_fail(self, context: grpc.ServicerContext) -> None:
        if self._failures.should_fail():
            context.abort(self._behaviour.fail_status,
                          f"injected failure by task {self._served_by.task_id} "
                          f"(ROUTEGUIDE_FAIL_FRACTION={self._behaviour.fail_fraction})")

    def _delay(self) -> None:
        if self._behaviour.latency_s > 0:
            time.sleep(self._behaviour.latency_s)


class RouteGuideServer:
    """A route guide with health checking, started and stopped as one unit."""

    def __init__(self, identity: TaskIdentity, behaviour: Behaviour, bind: BindAddress, logger: Any,
                 *, max_workers: int = 32) -> None:
        self._identity = identity
        self._behaviour = behaviour
        self._bind = bind
        self._logger = logger
        self._max_workers = max_workers
        self.health = RouteGuideHealth(behaviour.initial_health, logger)
        self._watcher = (HealthFileWatcher(behaviour.health_file, self.health, logger)
                         if behaviour.health_file else None)
        self._server: grpc.Server | None = None
        self.address: str | None = None

    def start(self) -> str:
        """Bind, start serving and return the bound ``host:port``; raise OSError if the port is taken."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_workers,
                                                        thread_name_prefix="routeguide"),
                             options=[("grpc.so_reuseport", 0)])
        requested = join_host_port(self._bind.host, self._bind.port)
        try:
            port = server.add_insecure_port(requested)
        except RuntimeError as exc:  # grpcio raises RuntimeError when it cannot bind
            raise OSError(f"cannot listen on {requested}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {requested}")
        self.address = join_host_port(self._bind.host, port)
        served_by = pb.ServedBy(task_id=self._identity.task_id, task_arn=self._identity.task_arn,
                                address=self.address, container_name=self._identity.container_name)
        pb_grpc.add_RouteGuideServicer_to_server(RouteGuideServicer(served_by, self._behaviour), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, server)
        if self._watcher:
            self._watcher.start()
        server.start()
        self._server = server
        self._logger.info("routeguide.started", address=self.address, task_id=self._identity.task_id,
                          task_arn=self._identity.task_arn, container_name=self._identity.container_name,
                          health=self.health.status.value, **self._behaviour.as_log_fields())
        return self.address

    def stop(self, grace_s: float | None = None, *, reason: str = "stop") -> None:
        """NOT_SERVING first, then let in-flight calls finish within the grace period."""
        grace = self._behaviour.shutdown_grace_s if grace_s is None else grace_s
        self._logger.info("routeguide.stopping", reason=reason, grace_s=grace, address=self.address)
        if self._watcher:
            self._watcher.stop()
        self.health.enter_shutdown()
        if self._behaviour.shutdown_delay_s and grace_s is None:
            time.sleep(self._behaviour.shutdown_delay_s)
        if self._server is not None:
            self._server.stop(grace=grace).wait()
        self._logger.info("routeguide.stopped", address=self.address)


def _echo_metadata(context: grpc.ServicerContext) -> None:
    """Tell the caller, in the reply's initial metadata, which request metadata reached this task, so
    tests see what proxies added, removed or rewrote on the way (binary `-bin` entries left out).
    Only on calls that succeed: a failed call stays trailers-only, which is what lets Envoy retry it
    and count it for outlier detection."""
    received = sorted((m.key, m.value) for m in context.invocation_metadata() if not m.key.endswith("-bin"))
    context.send_initial_metadata(((RECEIVED_METADATA, json.dumps(received)),))


def _diagonal(lo: pb.Point, hi: pb.Point) -> Iterator[pb.Point]:
    """A few points from lo to hi; one point when the rectangle is a point."""
    steps = 1 if (lo.latitude, lo.longitude) == (hi.latitude, hi.longitude) else _LIST_FEATURES_STEPS
    for i in range(steps):
        frac = i / max(steps - 1, 1)
        yield pb.Point(latitude=round(lo.latitude + (hi.latitude - lo.latitude) * frac),
                       longitude=round(lo.longitude + (hi.longitude - lo.longitude) * frac))


def _distance_m(a: pb.Point, b: pb.Point) -> float:
    """Great-circle distance in metres between two E7 coordinates (haversine)."""
    lat1, lat2 = math.radians(a.latitude / 1e7), math.radians(b.latitude / 1e7)
    dlat, dlon = lat2 - lat1, math.radians((b.longitude - a.longitude) / 1e7)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(h, 1.0)))
