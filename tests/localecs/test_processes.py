"""Child processes die with the server; the CLI serves, reports ready and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import boto3
import pytest

from controlplane.localecs import LocalEcsServer

from .helpers import container, wait_for


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _client(url: str) -> Any:
    return boto3.client("ecs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")


def test_close_leaves_no_child_processes(tmp_path: Any) -> None:
    server = LocalEcsServer(provisioning_seconds=0.01, pending_seconds=0.01, deactivating_seconds=5, log_dir=str(tmp_path))
    try:
        server.start()
        ecs = _client(server.url)
        ecs.create_cluster(clusterName="c")
        ecs.register_task_definition(family="t", containerDefinitions=[container(env={"TERM_DELAY": "ignore"}, stopTimeout=1), container(name="side", port=9090)])
        ecs.register_task_definition(family="v", networkMode="awsvpc", containerDefinitions=[container()])
        ecs.run_task(cluster="c", taskDefinition="t", count=2)
        ecs.create_service(cluster="c", serviceName="s", taskDefinition="v", desiredCount=2)

        def pids() -> list[int]:
            arns = ecs.list_tasks(cluster="c")["taskArns"]
            tasks = ecs.describe_tasks(cluster="c", tasks=arns)["tasks"]
            found = [int(c["runtimeId"].split("-")[1]) for t in tasks if t["lastStatus"] == "RUNNING" for c in t["containers"]]
            return found if len(found) == 6 else []

        children = wait_for(pids, what="6 running containers")
        assert all(_alive(pid) for pid in children)
        # A task draining (deactivating_seconds=5) must not hold close() up.
        ecs.stop_task(cluster="c", task=ecs.list_tasks(cluster="c", family="v")["taskArns"][0])
    finally:
        server.close()
    assert [pid for pid in children if _alive(pid)] == []


def test_cli_prints_ready_serves_and_stops_on_sigterm(tmp_path: Any) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "controlplane.localecs", "--port", "0", "--log-dir", str(tmp_path), "--deactivating-seconds", "0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = None
        for line in process.stdout:
            if line.startswith("{") and '"local_ecs.ready"' in line:
                ready = json.loads(line)
                break
        assert ready is not None and ready["url"].startswith("http://127.0.0.1:")
        ecs = _client(ready["url"])
        ecs.create_cluster(clusterName="cli")
        ecs.register_task_definition(family="t", containerDefinitions=[container()])
        arn = ecs.run_task(cluster="cli", taskDefinition="t")["tasks"][0]["taskArn"]
        task = wait_for(
            lambda: (t := ecs.describe_tasks(cluster="cli", tasks=[arn])["tasks"][0])["lastStatus"] == "RUNNING" and t,
            what="RUNNING",
        )
        child = int(task["containers"][0]["runtimeId"].split("-")[1])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        wait_for(lambda: not _alive(child), timeout=5, what="task process gone")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_cli_refuses_non_loopback_host() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "controlplane.localecs", "--host", "10.0.0.1", "--port", "0"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "outside 127.0.0.0/8" in result.stderr


def test_server_refuses_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="127.0.0.0/8"):
        LocalEcsServer(host="0.0.0.0")


def test_processes_get_the_documented_environment(tmp_path: Any) -> None:
    env_dump = tmp_path / "env.json"
    program = (
        "import json, os, socket, time\n"
        f"json.dump({{k: v for k, v in os.environ.items() if k.startswith(('ECS_', 'LOCAL_ECS_', 'MY_'))}}, open({str(env_dump)!r}, 'w'))\n"
        "s = socket.socket(); s.bind((os.environ['LOCAL_ECS_HOST'], int(os.environ['LOCAL_ECS_PORT_7000']))); s.listen()\n"
        "time.sleep(60)\n"
    )
    with LocalEcsServer(provisioning_seconds=0.01, pending_seconds=0.01, log_dir=str(tmp_path)) as server:
        ecs = _client(server.url)
        ecs.create_cluster(clusterName="env")
        ecs.register_task_definition(
            family="env", networkMode="bridge",
            containerDefinitions=[{"name": "main", "image": "x", "command": [sys.executable, "-c", program],
                                   "environment": [{"name": "MY_VAR", "value": "1"}],
                                   "portMappings": [{"containerPort": 7000, "hostPort": 0}]}],
        )
        arn = ecs.run_task(cluster="env", taskDefinition="env")["tasks"][0]["taskArn"]
        task = wait_for(lambda: (t := ecs.describe_tasks(cluster="env", tasks=[arn])["tasks"][0])["lastStatus"] == "RUNNING" and t, what="RUNNING")
        env = json.loads(env_dump.read_text())
    binding = task["containers"][0]["networkBindings"][0]
    assert env["ECS_TASK_ARN"] == arn
    assert env["ECS_TASK_ID"] == arn.rsplit("/", 1)[-1]
    assert env["ECS_CONTAINER_NAME"] == "main"
    assert env["MY_VAR"] == "1"
    assert env["LOCAL_ECS_PORT_7000"] == str(binding["hostPort"])
    assert env["LOCAL_ECS_HOST"].startswith("127.20.")
    assert os.path.exists(tmp_path)
