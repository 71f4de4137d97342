"""A submission that tries to become one of the harness's pytest plugins.

The harness loads pytest-timeout and pytest-json-report by module name (``-p``) and no plugin
by entry point (grader/harness/supervisor.py). A student's files never reach the harness's
import path, so a module named like one of those plugins, a package with a ``pytest11`` entry
point, or pytest's own configuration files among the submission change nothing: the tests are
run, reported and timed by the grader's plugins. The intake already drops such files (they are
not the assignment's); these put them in the job's submission folder anyway, as if it had not.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_harness import run_harness

RAISE = b"raise SystemExit('a student file was imported by the harness')\n"
FORGE = b"def pytest_runtest_call(item):\n    raise AssertionError('a student plugin ran')\n"


@pytest.fixture
def short_tmp():
    path = Path(tempfile.mkdtemp(prefix="mpg-"))  # the fork server's socket path must stay short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_files_named_like_the_harness_plugins_or_pytest_configuration_are_not_loaded(course, short_tmp):
    extra = {
        "submission/pytest_timeout.py": RAISE,                     # -p pytest_timeout
        "submission/pytest_jsonreport/__init__.py": RAISE,         # -p pytest_jsonreport.plugin
        "submission/pytest_jsonreport/plugin.py": RAISE,
        "submission/evil-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n",
        "submission/evil-1.0.dist-info/entry_points.txt": b"[pytest11]\nevil = evil\n",
        "submission/evil.py": FORGE,
        "submission/conftest.py": FORGE + RAISE,
        "submission/pytest.ini": b"[pytest]\naddopts = -p evil\n",
    }
    doc, _ = run_harness(course, REPO / "solutions" / "01_spawn", short_tmp, "01_spawn", extra=extra)
    assert doc["status"] == "graded"
    assert doc["score"] == doc["max_score"] == 25, [(t["id"], t["message"]) for t in doc["tests"]
                                                     if t["outcome"] != "passed"]


def test_a_forged_plugin_in_the_submission_cannot_pass_a_wrong_solution(course, short_tmp, tmp_path):
    """The other way round: a plugin that would turn every failure into a pass."""
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "spawn.py").write_text((REPO / "exercises" / "01_spawn" / "spawn.py").read_text())  # the stub
    passing = (b"import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
               b"    outcome = yield\n    outcome.get_result().outcome = 'passed'\n")
    extra = {"submission/pytest_timeout.py": passing,
             "submission/pass-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: pass\nVersion: 1.0\n",
             "submission/pass-1.0.dist-info/entry_points.txt": b"[pytest11]\npassing = passing\n",
             "submission/passing.py": passing}
    doc, _ = run_harness(course, wrong, short_tmp, "01_spawn", extra=extra)
    assert doc["status"] == "graded"
    assert doc["score"] == 0, [(t["id"], t["outcome"]) for t in doc["tests"]]
