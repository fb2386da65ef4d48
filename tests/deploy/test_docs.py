"""Every command in the deployment docs is either run here or marked as needing a real AWS account."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "deploy.md", ROOT / "docs" / "migrating-from-app-mesh.md"]
RUN_HERE = "# run by tests/deploy/test_docs.py"
NEEDS_AWS = "# needs a real AWS account"
SHELL_BLOCK = re.compile(r"^```(?:sh|bash|shell|console)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def shell_blocks() -> list[tuple[str, str]]:
    return [(f"{doc.name}#{n}", match.group(1)) for doc in DOCS for n, match in enumerate(SHELL_BLOCK.finditer(doc.read_text()))]


def test_every_shell_block_says_whether_it_needs_aws_or_is_run_here() -> None:
    blocks = shell_blocks()
    unmarked = [name for name, body in blocks if not body.startswith((RUN_HERE, NEEDS_AWS))]
    assert len(blocks) >= 8
    assert unmarked == []


@pytest.mark.parametrize("name,body", [b for b in shell_blocks() if b[1].startswith(RUN_HERE)], ids=lambda v: v if "#" in str(v) else "")
def test_the_commands_marked_as_run_here_succeed(name: str, body: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name}:\n{body}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
