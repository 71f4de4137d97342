"""A plugin that tries to take the place of one of the harness's pytest plugins.

The harness hands pytest-timeout and pytest-json-report to pytest as the modules it imported
itself and loads no plugin by entry point (grader/harness/supervisor.py). Naming them with
``-p`` instead would not do: pytest resolves ``-p NAME`` through the ``pytest11`` entry points
first, autoload or not, so any distribution on the path declaring an entry point of that name
(here on PYTHONPATH; in a sandbox, a package installed beside mpgrade) would be loaded in the
plugin's place. And a student's files never reach the harness's import path: modules named
like the plugins in the submission folder change nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_harness import run_harness

# A stand-in for pytest-timeout that accepts its options and turns every failure into a pass.
FORGER = b'''import pytest


def pytest_addoption(parser):
    parser.addoption("--timeout")
    parser.addoption("--timeout-method")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
'''
RAISE = b"raise SystemExit('a student file was imported by the harness')\n"


@pytest.fixture
def short_tmp():
    path = Path(tempfile.mkdtemp(prefix="mpg-"))  # the fork server's socket path must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def stub_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "stub"
    folder.mkdir()
    (folder / "spawn.py").write_text((REPO / "exercises" / "01_spawn" / "spawn.py").read_text())
    return folder


def test_an_entry_point_named_like_a_harness_plugin_does_not_take_its_place(course, short_tmp, tmp_path):
    site = short_tmp / "site"
    (site / "forger-1.0.dist-info").mkdir(parents=True)
    (site / "forger-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: forger\nVersion: 1.0\n")
    (site / "forger-1.0.dist-info" / "entry_points.txt").write_text(
        "[pytest11]\npytest_timeout = forger\npytest_jsonreport.plugin = forger\n")
    (site / "forger.py").write_bytes(FORGER)
    doc, _ = run_harness(course, stub_folder(tmp_path), short_tmp / "run", "01_spawn", env={"PYTHONPATH": str(site)})
    assert doc["status"] == "graded"
    assert doc["score"] == 0, [(t["id"], t["outcome"]) for t in doc["tests"] if t["outcome"] == "passed"]


def test_modules_named_like_the_harness_plugins_in_the_submission_are_not_imported(course, short_tmp, tmp_path):
    """As if the intake had let them through (it keeps only the assignment's files)."""
    extra = {"submission/pytest_timeout.py": FORGER + RAISE,
             "submission/pytest_jsonreport/__init__.py": RAISE,
             "submission/pytest_jsonreport/plugin.py": FORGER + RAISE}
    doc, _ = run_harness(course, stub_folder(tmp_path), short_tmp / "run", "01_spawn", extra=extra)
    assert doc["status"] == "graded"
    assert doc["score"] == 0, [(t["id"], t["outcome"]) for t in doc["tests"] if t["outcome"] == "passed"]
    doc, _ = run_harness(course, REPO / "solutions" / "01_spawn", short_tmp / "right", "01_spawn", extra=extra)
    assert doc["score"] == doc["max_score"] == 25, [(t["id"], t["message"]) for t in doc["tests"]
                                                     if t["outcome"] != "passed"]
