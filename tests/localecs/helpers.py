"""Helpers shared by the local ECS tests: the task program, container definitions, polling."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

# The task program: binds LOCAL_ECS_HOST:LOCAL_ECS_PORT_<p> for each port in PORTS,
# answers each connection with its ECS_TASK_ID, exits EXIT_AFTER seconds after start
# (with EXIT_CODE) if set, and on SIGTERM appends the wall-clock time to TERM_FILE (if
# set) and exits after TERM_DELAY seconds (or ignores SIGTERM when TERM_DELAY is "ignore").
TASK_PROGRAM = r"""
import os, signal, socket, sys, threading, time
host = os.environ["LOCAL_ECS_HOST"]
delay = os.environ.get("TERM_DELAY", "0")
def on_term(signum, frame):
    if os.environ.get("TERM_FILE"):
        with open(os.environ["TERM_FILE"], "a") as f:
            f.write(f"{time.time()}\n")
    if delay == "ignore":
        return
    time.sleep(float(delay))
    os._exit(0)
signal.signal(signal.SIGTERM, on_term)
def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(os.environ["LOCAL_ECS_PORT_" + port])))
    s.listen()
    while True:
        c, _ = s.accept()
        c.sendall(os.environ["ECS_TASK_ID"].encode())
        c.close()
for port in os.environ.get("PORTS", "8080").split(","):
    if port:
        threading.Thread(target=serve, args=(port,), daemon=True).start()
exit_after = os.environ.get("EXIT_AFTER")
if exit_after:
    time.sleep(float(exit_after))
    os._exit(int(os.environ.get("EXIT_CODE", "3")))
while True:
    time.sleep(1)
"""


def task_command() -> list[str]:
    """argv of the test task program."""
    return [sys.executable, "-c", TASK_PROGRAM]


def container(name: str = "app", port: int | None = 8080, env: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """A container definition running the test task program."""
    environment = {"PORTS": str(port) if port else ""}
    environment.update(env or {})
    result: dict[str, Any] = {
        "name": name,
        "image": "local/echo:latest",
        "command": task_command(),
        "essential": True,
        "environment": [{"name": k, "value": v} for k, v in environment.items()],
        "dockerLabels": {"xds.port": str(port or 0)},
    }
    if port:
        result["portMappings"] = [{"containerPort": port, "protocol": "tcp"}]
    result.update(extra)
    return result


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll until ``predicate`` returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
