"""The ``grpc.health.v1`` status of the route guide, and its run-time switch file."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from grpc_health.v1 import health, health_pb2

from controlplane.routeguide.behaviour import HealthStatus

SERVICE_NAME = "routeguide.RouteGuide"
_SERVICES = ("", SERVICE_NAME)
_PROTO_STATUS = {
    HealthStatus.SERVING: health_pb2.HealthCheckResponse.SERVING,
    HealthStatus.NOT_SERVING: health_pb2.HealthCheckResponse.NOT_SERVING,
}


class RouteGuideHealth:
    """Reports one status for the whole server and for ``routeguide.RouteGuide``."""

    def __init__(self, initial: HealthStatus, logger: Any) -> None:
        self.servicer = health.HealthServicer()
        self._logger = logger
        self._lock = threading.Lock()
        self._status = initial
        self._shutting_down = False
        for service in _SERVICES:
            self.servicer.set(service, _PROTO_STATUS[initial])

    @property
    def status(self) -> HealthStatus:
        return self._status

    def set(self, status: HealthStatus, *, reason: str) -> None:
        """Switch the status; ignored once shutdown has begun."""
        with self._lock:
            if self._shutting_down or status is self._status:
                return
            self._status = status
            for service in _SERVICES:
                self.servicer.set(service, _PROTO_STATUS[status])
        self._logger.info("routeguide.health_changed", status=status.value, reason=reason)

    def enter_shutdown(self) -> None:
        """NOT_SERVING for good, so health checkers stop sending new calls."""
        with self._lock:
            self._shutting_down = True
            self._status = HealthStatus.NOT_SERVING
            self.servicer.enter_graceful_shutdown()


class HealthFileWatcher:
    """Polls a file and applies its content (SERVING / NOT_SERVING) to the health status."""

    def __init__(self, path: Path, health: RouteGuideHealth, logger: Any, interval_s: float = 0.2) -> None:
        self._path = path
        self._health = health
        self._logger = logger
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routeguide-health-file", daemon=True)
        self._last_invalid: str | None = None

    def start(self) -> None:
        self.poll_once()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def poll_once(self) -> None:
        """Read the file once; a missing file or other content keeps the current status."""
        try:
            content = self._path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        status = HealthStatus.parse(content)
        if status is None:
            if content != self._last_invalid:  # log a bad file once, not five times a second
                self._last_invalid = content
                self._logger.warning("routeguide.health_file_invalid", path=str(self._path),
                                     content=content[:100], expected="SERVING or NOT_SERVING")
            return
        self._last_invalid = None
        self._health.set(status, reason=f"health file {self._path}")

    def _run(self) -> None:
        while not self._stopped.wait(self._interval_s):
            self.poll_once()
