"""`controlplane render --task-definition FILE`: run as users run it, in a subprocess, with PyYAML
made unimportable (render needs only the runtime dependencies)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controlplane.cli import main

# Runs the CLI with `import yaml` failing, as in an install without the dev extra.
_RUNNER = "import sys; sys.modules['yaml'] = None; from controlplane.cli import main; sys.exit(main(sys.argv[1:]))"


def _render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUNNER, "render", *args], capture_output=True, text=True, timeout=60)


def _register_input(family: str, labels: dict[str, str], port: int = 50051) -> dict[str, Any]:
    return {
        "family": family,
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {"name": "app", "image": "example/app:1", "portMappings": [{"containerPort": port, "protocol": "tcp"}], "dockerLabels": labels}
        ],
    }


def _write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_valid_labels_exit_0_with_the_resources_of_every_role_as_json(tmp_path: Path) -> None:
    orders = _write(tmp_path, "orders.json", _register_input(
        "orders", {"xds.service": "orders", "xds.route.hosts": "orders.example.com", "xds.route.prefix": "/orders.Orders/"}
    ))
    # DescribeTaskDefinition output, as `aws ecs describe-task-definition` prints it.
    described = {"taskDefinition": {**_register_input("web", {"xds.service": "web", "xds.protocol": "http1"}, 8080),
                                    "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:4", "revision": 4}}
    web = _write(tmp_path, "web.json", described)

    result = _render("--task-definition", orders, "--task-definition", web, "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["problems"] == []
    assert set(document["roles"]) == {"edge", "sidecar/orders", "grpc-client/orders", "sidecar/web", "grpc-client/web"}
    edge = document["roles"]["edge"]
    assert set(edge) == {"CDS", "EDS", "LDS", "RDS"} and set(edge["CDS"]) == {"orders", "web"}
    hosts = {vh["name"]: [r["name"] for r in vh["routes"]] for vh in edge["RDS"]["edge"]["virtual_hosts"]}
    # The explicit host's own route first, then the wildcard's as a fallback.
    assert hosts == {"_any_": ["web"], "orders.example.com": ["orders", "web"]}
    assert "web:4" in result.stderr and "0 label problems" in result.stderr


def test_label_problems_exit_1_and_are_listed(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad.json", _register_input("bad", {"xds.service": "bad", "xds.timeout.route": "9" * 400 + "s", "xds.Port": "1"}))

    result = _render("--task-definition", bad, "--json")

    assert result.returncode == 1, result.stderr
    problems = json.loads(result.stdout)["problems"]
    by_label = {p["label"]: p for p in problems}
    assert sorted((p["severity"], p["kind"], p["label"]) for p in problems) == [
        ("error", "invalid_value", "xds.timeout.route"),
        ("warning", "unknown_label", "xds.Port"),
    ]
    assert len(by_label["xds.timeout.route"]["value"]) <= 80 and "from 0 to 24h" in by_label["xds.timeout.route"]["message"]
    assert "did you mean xds.port?" in by_label["xds.Port"]["message"]
    assert "Traceback" not in result.stderr and "bad:1" in result.stderr


def _in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_warnings_fail_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    warned = _write(tmp_path, "warned.json", _register_input("warned", {"xds.service": "warned", "xds.retries": "3"}))
    assert _in_process(capsys, "--task-definition", warned)[0] == 1
    code, out, err = _in_process(capsys, "--task-definition", warned, "--allow-warnings")
    assert code == 0 and "# role edge" in out and "unknown label" in err


def test_a_lone_surrogate_or_control_character_is_a_problem_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # JSON can carry a lone surrogate (\ud800), which UTF-8 and protobuf refuse.
    text = json.dumps(_register_input("odd", {"xds.service": "odd", "xds.route.prefix": "/a\ud800\u0000"}), ensure_ascii=True)
    odd = _write(tmp_path, "odd.json", text)

    code, out, err = _in_process(capsys, "--task-definition", odd, "--json")

    assert code == 1, err
    (problem,) = json.loads(out)["problems"]
    assert problem["label"] == "xds.route.prefix" and "printable ASCII" in problem["message"]
    assert problem["value"] == "/a\\ud800\\x00"
    err.encode("utf-8")  # what reaches the terminal is encodable


def test_usage_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _render("--task-definition", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "cannot read it" in result.stderr, result.stderr
    not_json = _write(tmp_path, "not.json", "{")
    no_td = _write(tmp_path, "empty.json", {"family": "x"})
    bad_labels = _write(tmp_path, "labels.json", {"family": "x", "containerDefinitions": [{"name": "app", "dockerLabels": {"xds.port": 50051}}]})
    for args, expected in (
        ((), "give --task-definition FILE and/or --cluster NAME"),
        (("--task-definition", not_json), "not JSON"),
        (("--task-definition", no_td), "expected a task definition"),
        (("--task-definition", bad_labels), "dockerLabels: expected an object of string keys and string values"),
        (("--task-definition", not_json, "--bogus"), "unrecognized arguments: --bogus"),
        (("--task-definition", no_td, "--max-hosts-per-service", "0"), None),
    ):
        code, out, err = _in_process(capsys, *args)
        assert code == 2, (args, out, err)
        assert err.count("\n") == 1 and "Traceback" not in err, err
        if expected is not None:
            assert expected in err, err
