"""`controlplane demo --json`: the whole story in one JSON object, exit 0 when every target is met."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_json_reports_per_call_per_connection_new_task_and_failed_calls() -> None:
    done = subprocess.run([sys.executable, "-m", "controlplane", "demo", "--json"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    result = json.loads(done.stdout)
    assert sorted(result["per_call"].values()) and all(45 <= n <= 55 for n in result["per_call"].values()), result["per_call"]
    assert sorted(result["per_connection"].values()) == [100], result["per_connection"]
    assert set(result["per_call"]) == set(result["per_connection"]) | set(result["per_call"])
    assert 0 <= result["new_task_seconds"] <= 5
    assert result["failed_calls"] == 0
    assert result["ok"] is True and all(check["passed"] for check in result["checks"].values())
    assert result["tls"] is True
    tasks = set(result["tasks"])
    assert result["access_log"] and all(e["grpc_status"] == "OK" and e["upstream_host"] in tasks for e in result["access_log"])
