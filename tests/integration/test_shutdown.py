"""SIGTERM stops `controlplane serve` promptly even while an ECS call hangs (botocore would retry
it for minutes: nothing may wait for it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from controlplane.demo.stack import DemoStack

pytestmark = pytest.mark.integration


def test_sigterm_stops_serve_within_seconds_while_an_ecs_call_hangs() -> None:
    with DemoStack(cluster="shutdown") as stack:
        stack.start_local_ecs()
        stack.create_service("routeguide", stack.register(), 1)
        stack.wait_for_running("routeguide", 1)
        stack.start_control_plane()
        assert stack.control_plane is not None and stack.control_plane.proc is not None
        process = stack.control_plane.proc
        # Every read from now on hangs for two minutes; the next poll (5 s) starts one.
        stack.inject_faults(operation="ListTasks", latency=120)
        stack.inject_faults(operation="DescribeTasks", latency=120)
        time.sleep(6.5)
        assert process.poll() is None

        started = time.monotonic()
        os.killpg(process.pid, signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("serve still running 30 s after SIGTERM")
        elapsed = time.monotonic() - started
        stack.clear_faults()
        log = stack.control_plane_log_text()

    assert code == 0
    assert elapsed < 10, f"serve took {elapsed:.1f} s to stop"
    assert "controlplane.stopped" in log
