"""Drives one task through its ECS lifecycle, with AWS's stop semantics.

PROVISIONING -> PENDING -> RUNNING -> (DEACTIVATING) -> STOPPING -> (DEPROVISIONING) -> STOPPED

* DEACTIVATING only for tasks of a service that declares ``loadBalancers``: it lasts the
  target group's deregistration delay (``deactivating_seconds``), then the containers get
  SIGTERM. Any other task gets SIGTERM right after ``desiredStatus`` becomes STOPPED.
* STOPPING: SIGTERM to every container at once, SIGKILL after that container's
  ``stopTimeout`` (the task definition's, else ``default_stop_timeout_seconds``, 30 s in ECS).
* DEPROVISIONING (awsvpc only: the ENI is detached) after the containers have stopped.

Each task has its own runner thread. The thread also spawns the task's processes,
because PR_SET_PDEATHSIG fires when the forking thread exits: the runner only
exits after its processes are gone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from controlplane.localecs import model
from controlplane.localecs.model import Container, Task
from controlplane.localecs.processes import ContainerProcess, HealthChecker, docker_exit_code, wait_for_ports

# ECS's default stopTimeout (ECS_CONTAINER_STOP_TIMEOUT on EC2, Fargate's default too).
AWS_DEFAULT_STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Timing:
    """Lifecycle delays, in seconds."""

    provisioning_seconds: float = 0.2
    pending_seconds: float = 0.2
    # Time a stopping task of a load-balanced service stays DEACTIVATING before SIGTERM:
    # the target group's deregistration delay (300 s by default in AWS; short here).
    deactivating_seconds: float = 1.0
    start_timeout_seconds: float = 10.0
    default_stop_timeout_seconds: float = AWS_DEFAULT_STOP_TIMEOUT_SECONDS
    # Time an awsvpc task stays DEPROVISIONING (ENI detach) after its containers stopped.
    deprovisioning_seconds: float = 0.2
    # Not AWS: every stopping task drains as if its service had a load balancer.
    drain_every_task: bool = False


class TaskRunner:
    """Runs one task's processes and moves its state along; all mutations under ``lock``."""

    def __init__(
        self,
        task: Task,
        lock: threading.RLock,
        timing: Timing,
        log_dir: str,
        on_finished: Callable[[Task], None],
    ) -> None:
        self.task = task
        self._lock = lock
        self._timing = timing
        self._log_dir = log_dir
        self._on_finished = on_finished
        # Set by close(): skip the deactivating delay.
        self._hurry = threading.Event()
        self._processes: dict[str, ContainerProcess] = {}
        self._checkers: list[HealthChecker] = []
        self._log = structlog.get_logger().bind(task_id=task.id, cluster=task.cluster)
        self._thread = threading.Thread(target=self._run, name=f"task-{task.id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def request_stop(self, stop_code: str, reason: str, hurry: bool = False) -> None:
        """Ask the task to stop; desiredStatus becomes STOPPED at once. Idempotent."""
        with self._lock:
            task = self.task
            if task.desired_status != model.STOPPED:
                task.desired_status = model.STOPPED
                task.stop_code = stop_code
                task.stopped_reason = reason
                task.stopping_at = time.time()
                task.touch()
                self._log.info("local_ecs.task_stop_requested", stop_code=stop_code, reason=reason)
        if hurry:
            self._hurry.set()
        task.stop_requested.set()

    # --- state helpers -------------------------------------------------------------

    def _set_status(self, status: str) -> None:
        with self._lock:
            self.task.last_status = status
            self.task.touch()
        self._log.info("local_ecs.task_status", last_status=status)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless a stop is requested; True if it was."""
        return self.task.stop_requested.wait(seconds)

    # --- the lifecycle ---------------------------------------------------------------

    def _run(self) -> None:
        task = self.task
        try:
            reached_running = self._start()
            if reached_running:
                self._watch()
                self._deactivate()
            self._stop_containers()
        except Exception as exc:  # the runner must always reach STOPPED
            self._log.exception("local_ecs.task_runner_failed")
            self._fail("TaskFailedToStart", f"local ECS error: {exc}")
            self._stop_containers()
        finally:
            try:
                self._deprovision()
            finally:
                with self._lock:
                    now = time.time()
                    task.last_status = model.STOPPED
                    task.desired_status = model.STOPPED
                    task.execution_stopped_at = task.execution_stopped_at or now
                    task.stopped_at = now
                    task.attachment_status = "DELETED"
                    for container in task.containers:
                        container.last_status = model.STOPPED
                    task.touch()
                self._log.info(
                    "local_ecs.task_stopped", stop_code=task.stop_code, reason=task.stopped_reason
                )
                self._on_finished(task)

    def _fail(self, stop_code: str, reason: str) -> None:
        with self._lock:
            task = self.task
            if task.desired_status != model.STOPPED or task.stop_code is None:
                task.desired_status = model.STOPPED
                task.stop_code = stop_code
                task.stopped_reason = reason
                task.stopping_at = task.stopping_at or time.time()
            task.touch()
        self._log.warning("local_ecs.task_failed", stop_code=stop_code, reason=reason)

    def _start(self) -> bool:
        task = self.task
        timing = self._timing
        if self._sleep(timing.provisioning_seconds):
            return False
        with self._lock:
            task.attachment_status = "ATTACHED"
            task.pull_started_at = time.time()
        self._set_status(model.PENDING)
        if self._sleep(timing.pending_seconds):
            return False
        with self._lock:
            task.pull_stopped_at = time.time()
        if task.address_only:
            with self._lock:
                for container in task.containers:
                    container.runtime_id = f"local-address-only-{task.id[:12]}"
            return self._started()
        for container in task.containers:
            if not container.command:
                self._fail(
                    "TaskFailedToStart",
                    f"container {container.name} has no command: the local ECS runs each "
                    "container's command as a local process",
                )
                return False
            log_path = os.path.join(self._log_dir, f"{task.id}-{container.name}.log")
            with self._lock:
                container.log_path = log_path
            try:
                process = ContainerProcess.spawn(container.command, container.environment, log_path)
            except OSError as exc:
                self._fail(
                    "TaskFailedToStart",
                    f"CannotStartContainerError: {container.name}: {exc}",
                )
                return False
            self._processes[container.name] = process
            with self._lock:
                container.runtime_id = f"local-{process.pid}"
            self._log.info(
                "local_ecs.container_started", container=container.name, pid=process.pid
            )
        reason = wait_for_ports(
            task.host_address,
            # Processes listen on IPv4 only: the "::" binding's port is reported, never served.
            [b.host_port for c in task.containers for b in c.bindings if b.protocol == "tcp" and b.bind_ip == model.IPV4_ANY],
            timing.start_timeout_seconds,
            self._dead_reason,
            task.stop_requested,
        )
        if reason is not None:
            if not task.stop_requested.is_set():
                self._fail("TaskFailedToStart", reason + self._log_hint())
            return False
        return self._started()

    def _started(self) -> bool:
        task = self.task
        with self._lock:
            task.started_at = time.time()
            task.last_status = model.RUNNING
            for container in task.containers:
                container.last_status = model.RUNNING
            task.touch()
        self._log.info("local_ecs.task_started", address=task.host_address)
        if task.address_only:
            return True
        for container in task.containers:
            if container.health_check:
                checker = HealthChecker(
                    container.health_check,
                    container.environment,
                    self._health_reporter(container),
                    container=container.name,
                )
                self._checkers.append(checker)
                checker.start()
        return True

    def _log_hint(self) -> str:
        paths = [c.log_path for c in self.task.containers if c.log_path]
        return f" (logs: {', '.join(paths)})" if paths else ""

    def _dead_reason(self) -> str | None:
        for container in self.task.containers:
            process = self._processes.get(container.name)
            if process is None:
                continue
            code = process.poll()
            if code is not None:
                code = docker_exit_code(code)
                with self._lock:
                    container.exit_code = code
                    container.last_status = model.STOPPED
                    container.reason = f"exited with code {code} before the task was running"
                return f"container {container.name} exited with code {code}"
        return None

    def _health_reporter(self, container: Container) -> Callable[[str], None]:
        def report(status: str) -> None:
            # No touch(): ECS bumps no version and sends no event when a health check
            # result changes (aws/containers-roadmap #1515, #1019); only DescribeTasks shows it.
            with self._lock:
                container.health_status = status

        return report

    def _watch(self) -> None:
        """Wait while RUNNING: until a stop is requested or an essential container exits."""
        task = self.task
        if task.address_only:
            # Nothing to watch: no busy polling, so that thousands of these stay cheap.
            task.stop_requested.wait()
            return
        while not task.stop_requested.wait(0.05):
            for container in task.containers:
                process = self._processes.get(container.name)
                if process is None or container.last_status == model.STOPPED:
                    continue
                code = process.poll()
                if code is None:
                    continue
                code = docker_exit_code(code)
                with self._lock:
                    container.exit_code = code
                    container.last_status = model.STOPPED
                    container.reason = None
                    task.touch()
                self._log.info(
                    "local_ecs.container_exited", container=container.name, exit_code=code
                )
                if container.essential:
                    with self._lock:
                        task.execution_stopped_at = time.time()
                    self._fail(
                        "EssentialContainerExited",
                        f"Essential container in task exited ({container.name} exited with "
                        f"code {code})" + self._log_hint(),
                    )
                    return

    def _deactivate(self) -> None:
        """DEACTIVATING for the deregistration delay, only for tasks behind a load balancer."""
        task = self.task
        if task.stop_code == "EssentialContainerExited" or self._hurry.is_set():
            return
        if not (task.load_balanced or self._timing.drain_every_task):
            return
        self._set_status(model.DEACTIVATING)
        self._hurry.wait(self._timing.deactivating_seconds)

    def _stop_containers(self) -> None:
        """STOPPING: SIGTERM to every container, SIGKILL after its stopTimeout."""
        for checker in self._checkers:
            checker.stop()
        task = self.task
        if not self._processes and not (task.address_only and task.started_at is not None):
            return
        self._set_status(model.STOPPING)
        # Stop containers in parallel: each gets its own stopTimeout, as in ECS.
        threads = []
        for container in task.containers:
            process = self._processes.get(container.name)
            if process is None:
                continue
            thread = threading.Thread(
                target=self._stop_one, args=(container, process, container.stop_timeout), daemon=True
            )
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        self._processes.clear()
        with self._lock:
            task.execution_stopped_at = task.execution_stopped_at or time.time()
            for container in task.containers:
                container.last_status = model.STOPPED

    def _stop_one(self, container: Container, process: ContainerProcess, timeout: float) -> None:
        code = process.stop(timeout)
        with self._lock:
            if container.exit_code is None:
                container.exit_code = code
            container.last_status = model.STOPPED
        self._log.info("local_ecs.container_stopped", container=container.name, exit_code=code)

    def _deprovision(self) -> None:
        """DEPROVISIONING while the ENI of an awsvpc task is detached; its containers are gone."""
        task = self.task
        if task.network_mode != "awsvpc":
            return
        with self._lock:
            task.last_status = model.DEPROVISIONING
            if task.attachment_status != "PRECREATED":
                task.attachment_status = "DETACHING"
            for container in task.containers:
                container.last_status = model.STOPPED
            task.touch()
        self._log.info("local_ecs.task_status", last_status=model.DEPROVISIONING)
        self._hurry.wait(self._timing.deprovisioning_seconds)
