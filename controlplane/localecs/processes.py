"""Spawning, stopping and health-checking the local processes that stand in for containers."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import structlog

_PR_SET_PDEATHSIG = 1


def _load_libc() -> Any:
    # Loaded once in the parent: loading a library between fork and exec is not safe.
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


_LIBC = _load_libc()


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM the child when the thread that forked it dies.

    PR_SET_PDEATHSIG is tied to the forking *thread*, which is why each task's processes
    are spawned from that task's long-lived runner thread.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ContainerProcess:
    """One running container command, in its own session so we can signal its whole group."""

    def __init__(self, popen: subprocess.Popen[bytes], log_file: IO[bytes]) -> None:
        self._popen = popen
        self._log_file = log_file

    @classmethod
    def spawn(cls, argv: Sequence[str], env: dict[str, str], log_path: str) -> ContainerProcess:
        """Start ``argv`` (no shell) with ``env``, stdout and stderr appended to ``log_path``."""
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/terminate()
        try:
            popen = subprocess.Popen(
                list(argv),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - needed for PDEATHSIG
                close_fds=True,
            )
        except BaseException:
            log_file.close()
            raise
        return cls(popen, log_file)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """The exit code, or None while running."""
        return self._popen.poll()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self._popen.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float) -> int:
        """SIGTERM the process group, wait up to ``timeout`` seconds, then SIGKILL; return the exit code."""
        if self._popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self._popen.wait(timeout=max(timeout, 0.0))
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
        # Children of the command (e.g. of a shell) may outlive it; the group dies with it.
        self._signal_group(signal.SIGKILL)
        self._log_file.close()
        return docker_exit_code(self._popen.returncode)


def docker_exit_code(returncode: int | None) -> int:
    """Exit code as Docker reports it: death by signal N is 128 + N (SIGKILL -> 137)."""
    if returncode is None:
        return -1
    return 128 - returncode if returncode < 0 else returncode


def wait_for_ports(
    address: str,
    ports: Sequence[int],
    timeout: float,
    still_alive: Callable[[], str | None],
    cancelled: threading.Event,
) -> str | None:
    """Poll until every port accepts TCP connections on ``address``.

    Returns None on success, else why not: the timeout passed, the process died
    (``still_alive`` returns a reason), or ``cancelled`` was set.
    """
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        dead = still_alive()
        if dead:
            return dead
        if cancelled.is_set():
            return "task stop requested before the task was running"
        port = pending[0]
        try:
            with socket.create_connection((address, port), timeout=0.2):
                pending.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            return f"port {port} on {address} did not accept connections within {timeout:g}s"
        cancelled.wait(0.05)
    return None


def health_check_argv(command: Sequence[str]) -> list[str]:
    """Turn an ECS ``healthCheck.command`` (``CMD`` / ``CMD-SHELL`` form) into argv."""
    if not command:
        raise ValueError("healthCheck.command is empty")
    kind, rest = command[0], list(command[1:])
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    if kind == "CMD":
        return rest
    # AWS accepts a bare command too and treats it like CMD.
    return list(command)


class HealthChecker:
    """Runs a container health check every ``interval`` seconds and reports HEALTHY/UNHEALTHY.

    Docker semantics: failures during ``startPeriod`` do not count, a success always
    makes the container HEALTHY, ``retries`` consecutive failures make it UNHEALTHY.
    """

    def __init__(
        self,
        check: dict[str, Any],
        env: dict[str, str],
        report: Callable[[str], None],
        container: str,
    ) -> None:
        self._argv = health_check_argv(list(check.get("command", [])))
        self._interval = max(float(check.get("interval", 30)), 0.1)
        self._timeout = max(float(check.get("timeout", 5)), 0.1)
        self._retries = max(int(check.get("retries", 3)), 1)
        self._start_period = max(float(check.get("startPeriod", 0)), 0.0)
        self._env = env
        self._report = report
        self._stop = threading.Event()
        self._log = structlog.get_logger().bind(container=container)
        self._thread = threading.Thread(target=self._run, name=f"health-{container}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._timeout + 1)

    def _probe(self) -> bool:
        try:
            result = subprocess.run(
                self._argv,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=self._timeout,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        except (subprocess.TimeoutExpired, OSError):
            return False
        return result.returncode == 0

    def _run(self) -> None:
        started = time.monotonic()
        failures = 0
        status = "UNKNOWN"
        while not self._stop.wait(self._interval):
            ok = self._probe()
            if self._stop.is_set():
                return
            if ok:
                failures = 0
                new_status = "HEALTHY"
            else:
                in_start_period = time.monotonic() - started < self._start_period
                failures = 0 if in_start_period else failures + 1
                new_status = "UNHEALTHY" if failures >= self._retries else status
            if new_status != status:
                status = new_status
                self._log.info("local_ecs.container_health_changed", health_status=status)
                self._report(status)
