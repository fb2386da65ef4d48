"""Start a route guide as a real subprocess, the way the local ECS does, for tests and demos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from controlplane.routeguide.loopback import require_loopback_host


class RouteGuideProcess:
    """A ``python -m controlplane.routeguide`` child in its own process group.

    ``start()`` waits for the ``routeguide.started`` log event and learns the bound
    address from it, so port 0 (any free port) works. Use as a context manager so
    the process group is killed even when the test fails.
    """

    def __init__(self, host: str, *, port: int = 0, container_port: int = 50051, task_id: str | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        require_loopback_host(host, what="LOCAL_ECS_HOST")
        self.host = host
        self.task_id = task_id or f"routeguide-{host}"
        self._container_port = container_port
        self._env = {
            **os.environ,
            "LOCAL_ECS_HOST": host,
            f"LOCAL_ECS_PORT_{container_port}": str(port),
            "ECS_TASK_ID": self.task_id,
            "ECS_TASK_ARN": f"arn:aws:ecs:local:000000000000:task/test/{self.task_id}",
            "ECS_CONTAINER_NAME": "routeguide",
            **(env or {}),
        }
        self._log = tempfile.NamedTemporaryFile(prefix="routeguide-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self.proc: subprocess.Popen[bytes] | None = None
        self._address: str | None = None

    def start(self, timeout: float = 10.0) -> RouteGuideProcess:
        """Launch and wait until serving; raise RuntimeError with the log if it exits or times out."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controlplane.routeguide", "--port", str(self._container_port)],
            env=self._env, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = self.find_event("routeguide.started")
            if started is not None:
                self._address = str(started["address"])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"route guide exited with {self.proc.returncode}:\n{self.log_text()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"route guide did not start within {timeout}s:\n{self.log_text()}")

    @property
    def address(self) -> str:
        """The bound ``host:port``, known once start() returned."""
        if self._address is None:
            raise RuntimeError("route guide not started")
        return self._address

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log events written so far (non-JSON lines skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def find_event(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e.get("event") == name), None)

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group; safe to call more than once."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def close(self) -> None:
        self.kill()
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> RouteGuideProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
