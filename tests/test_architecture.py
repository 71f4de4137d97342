"""The dependency contract (``.importlinter``, run by ``make lint``) holds, and it can fail.

Each violation below is one the layout exists to prevent. It is written into a copy of the
package, and the contract must name it: a contract that passes everything checks nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy, ahead of the editable install
    return subprocess.run([str(LINT), "--no-cache", str(root / ".importlinter")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "grader", tmp_path / "grader",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def add_import(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_package_keeps_its_contract():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize(("module", "line", "said"), [
    # code inside the sandbox reaching for host code
    ("grader.harness.plugin", "import grader.sandbox.docker", "grader.harness.plugin -> grader.sandbox.docker"),
    ("grader.harness.boundary.call", "from grader import batch", "grader.harness.boundary.call -> grader.batch"),
    # the host importing the harness instead of speaking the wire
    ("grader.grading", "from grader.harness import supervisor", "grader.grading -> grader.harness.supervisor"),
    # a lower layer importing a higher one
    ("grader.sandbox.local", "from grader import grading", "grader.sandbox.local -> grader.grading"),
    ("grader.protocol.results", "from grader.intake import notebook", "grader.protocol.results -> grader.intake.notebook"),
    # the report grading or starting a sandbox
    ("grader.report.site", "from grader import grading", "grader.report.site -> grader.grading"),
    # student processes loading anything but the standard library
    ("grader._boot.mpgrade_plain", "import psutil", "grader._boot.mpgrade_plain -> psutil"),
    # an import circle inside a package
    ("grader.harness.boundary.record", "from grader.harness.boundary import runner",
     "grader.harness.boundary"),
])
def test_a_violation_breaks_the_contract(copy, module, line, said):
    add_import(copy, module, line)
    result = lint(copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and said in result.stdout, result.stdout[-4000:]
