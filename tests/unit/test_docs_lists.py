"""docs/admin-api.md lists every metric and every log event the product emits: checked against the metrics
registry and against every structlog call in the package, so the lists cannot drift."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from controlplane.admin.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "admin-api.md"
# What our structlog loggers are called: `log = structlog.get_logger()`, `bound = log.bind(...)`, `self._log`.
LOGGERS = {"log", "_log", "bound", "logger"}
LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "msg", "log"}
# Tools apart from the product log their own events (the local ECS, the sample service, the demo).
APART = ("localecs", "routeguide", "demo")


def section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def first_column_names(markdown: str) -> set[str]:
    """Every `name` in the first column of the section's tables."""
    names: set[str] = set()
    for line in markdown.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return names


def exported_metrics() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        if family.name.startswith(("process_", "python_")):
            continue  # prometheus_client's standard process and platform collectors, documented as a group
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def logged_events() -> dict[str, str]:
    """Event name -> where it is logged, for every structlog call in product code."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "controlplane").rglob("*.py")):
        rel = path.relative_to(ROOT / "controlplane")
        if rel.parts[0] in APART or rel.parts[0] == "proto":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS):
                continue
            target = node.func.value
            name = target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else ""
            if name not in LOGGERS or not node.args:
                continue
            event_arg = node.args[1] if node.func.attr == "log" and len(node.args) > 1 else node.args[0]
            for constant in ast.walk(event_arg):
                if isinstance(constant, ast.Constant) and isinstance(constant.value, str) and re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", constant.value):
                    found.setdefault(constant.value, f"{rel}:{node.lineno}")
    return found


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = first_column_names(section("Metrics"))
    exported = exported_metrics()
    assert exported - documented == set(), "metrics missing from docs/admin-api.md"
    assert {n for n in documented if n.startswith("controlplane_")} - exported == set(), "documented metrics that do not exist"


def test_every_log_event_is_documented_and_every_documented_event_is_logged() -> None:
    documented = first_column_names(section("Log events"))
    logged = logged_events()
    missing = {name: where for name, where in logged.items() if name not in documented}
    assert missing == {}, "log events missing from docs/admin-api.md"
    assert documented - set(logged) == set(), "documented log events that nothing logs"


def test_the_checks_see_what_they_check() -> None:
    assert "controlplane_xds_pushes_total" in exported_metrics()
    assert "mesh.updated" in logged_events() and "xds.nack" in logged_events()
