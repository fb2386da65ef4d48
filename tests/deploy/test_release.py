"""A release a user can pin: `python -m build` makes a wheel that installs into a clean virtualenv
and runs; its metadata carries the version (from controlplane/__init__.py only), the licence,
classifiers and py.typed."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import controlplane

# Builds a wheel, a virtualenv and installs every runtime dependency from the registry: minutes on a busy machine.
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (built,) = out.glob("*.whl")
    return built


def test_the_wheel_carries_version_licence_classifiers_and_types(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())

    assert wheel.name == f"ecs_xds_controlplane-{controlplane.__version__}-py3-none-any.whl"
    assert metadata["Version"] == controlplane.__version__
    assert metadata["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in metadata.get_all("Classifier", [])
    assert "controlplane/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    # The package data the product reads at run time, and nothing of the repository's tests or deploy files.
    assert not [n for n in names if n.startswith(("tests/", "deploy/", "bench/"))]


@pytest.mark.timeout(900)  # pip installs every runtime dependency into the clean virtualenv
def test_the_wheel_installs_into_a_clean_virtualenv_and_runs(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "clean"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    install = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel)], capture_output=True, text=True, timeout=900
    )
    assert install.returncode == 0, install.stderr[-3000:]

    help_ = subprocess.run([str(bin_dir / "controlplane"), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    version = subprocess.run([str(bin_dir / "controlplane"), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path)

    assert help_.returncode == 0 and "serve" in help_.stdout and "bootstrap" in help_.stdout, help_.stderr
    assert version.stdout.strip() == f"controlplane {controlplane.__version__}"
    # It runs from the virtualenv, not from this checkout.
    where = subprocess.run([str(bin_dir / "python"), "-c", "import controlplane; print(controlplane.__file__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert where.stdout.strip().startswith(str(env_dir))
    # The dry run works with the runtime dependencies alone (docs/labels.md, render).
    task_definition = tmp_path / "orders.json"
    task_definition.write_text(json.dumps({"family": "orders", "containerDefinitions": [
        {"name": "app", "portMappings": [{"containerPort": 50051}], "dockerLabels": {"xds.service": "orders"}}]}))  # fmt: skip
    render = subprocess.run([str(bin_dir / "controlplane"), "render", "--task-definition", str(task_definition), "--json"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)  # fmt: skip
    assert render.returncode == 0 and "orders" in json.loads(render.stdout)["roles"]["edge"]["CDS"], render.stderr
