"""Imports follow the pipeline: a stage may import the stages below it, never above.

(errors, xds, proto) < proxy < (discovery, secrets) < model < translate < cache < server < admin < (app, supervision, cli, settings, logs).
The local ECS, the sample route-guide service and the demo sit apart: product code never imports them (only the
CLI's entry point dispatches to them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "controlplane"

RANKS: dict[str, int] = {
    "errors": 0,
    "xds": 0,
    "proto": 0,
    "": 0,  # controlplane/__init__.py: the version
    "proxy": 1,
    "discovery": 2,
    "secrets": 2,  # certificate sources for the edge: outside I/O beside discovery, read by translate
    "model": 3,
    "translate": 4,
    "cache": 5,
    "server": 6,
    "admin": 7,
    "app": 8,
    "supervision": 8,
    "cli": 8,
    "settings": 8,
    "logs": 8,
    "heap": 8,
    "__main__": 8,
}
APART = {"localecs", "routeguide", "demo"}


def stage_of(module: str) -> str:
    """`controlplane.translate.route` -> `translate`; `controlplane` -> ``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """Every `controlplane.*` module that `path` imports, at any depth (function-level imports count too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "controlplane" or name.startswith("controlplane.")]


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when it may."""
    src, dst = stage_of(importer), stage_of(imported)
    if src == dst:
        return None
    if src in APART:
        return None  # tools apart from the product may use it (the demo runs the real pipeline)
    if dst in APART:
        return None if src == "cli" else f"product code ({src or 'controlplane'}) imports {dst}, which is apart from the product"
    if src not in RANKS or dst not in RANKS:
        return f"{src or dst} is not placed in the layering: add it to RANKS in this test and to docs/architecture.md"
    if RANKS[dst] > RANKS[src]:
        return f"{src} imports {dst}, a later stage of the pipeline"
    if RANKS[src] == 0 and dst != src:
        return f"{src} is at the bottom and imports nothing of ours, but imports {dst}"
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "proto" in path.relative_to(PACKAGE).parts[:1]:
            continue  # generated
        module = module_name(path)
        for line, imported in imported_modules(path, module):
            why = violation(module, imported)
            if why:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {imported}: {why}")
    return problems


def test_no_import_climbs_the_pipeline() -> None:
    assert all_violations() == []


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("controlplane.cache.snapshot", "controlplane.server.stream"),
        ("controlplane.translate.route", "controlplane.cache.store"),
        ("controlplane.discovery.ecs", "controlplane.model.mesh"),
        ("controlplane.xds.wire", "controlplane.translate.resources"),
        ("controlplane.server.ads", "controlplane.localecs.backend"),
        ("controlplane.model.build", "controlplane.newstage.thing"),
    ],
)
def test_the_check_refuses_a_climbing_import(importer: str, imported: str) -> None:
    assert violation(importer, imported) is not None


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("controlplane.server.ads", "controlplane.cache.store"),
        ("controlplane.translate.route", "controlplane.xds.types"),
        ("controlplane.cli.main", "controlplane.localecs"),
        ("controlplane.demo.stack", "controlplane.app"),
    ],
)
def test_the_check_allows_imports_down_the_pipeline(importer: str, imported: str) -> None:
    assert violation(importer, imported) is None


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("from ..server import stream\nfrom . import sibling\n")
    assert imported_modules(source, "controlplane.cache.mod") == [(1, "controlplane.server"), (2, "controlplane.cache")]
