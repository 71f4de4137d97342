"""A manifest whose exercise points disagree with its tests' points is stopped where the author
works (check, validate, release, grade), before any student is graded (#17).

Before, ``mpgrade check`` passed silently and ``mpgrade grade`` gave every submission ``error``
and 0: grading finds the mismatch only in each result (``grader.protocol.results``). The
commands now run that same check (``Exercise.points_problem``) on the tests' markers first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.protocol import results

from .conftest import REPO

EXTRA = '''


@pytest.mark.points(5)
def test_one_more(student):
    """a test the manifest's points do not count"""
    assert student.module("spawn").worker_pids(1)
'''

PROBLEM = "the tests of 01_spawn are worth 30 points, the manifest says 25"


def mpgrade(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "COLUMNS": "300", "PYTHONPATH": str(REPO)})


@pytest.fixture
def disagreeing(course_copy: Path) -> Path:
    """The course with 5 more points of hidden tests in 01_spawn than its manifest's 25."""
    hidden = course_copy / "solutions" / "01_spawn" / "test_hidden.py"
    hidden.write_text(hidden.read_text() + EXTRA)
    return course_copy


def test_the_assignment_names_the_exercise_and_both_totals(disagreeing):
    assert assignment_mod.load(disagreeing).points_problems() == [PROBLEM]


def test_the_bundled_course_agrees(course):
    assert course.points_problems() == []


def test_grading_reports_the_same_problem_in_the_same_words(disagreeing):
    """One check: what the commands say first is what a grade of such an assignment says."""
    course = assignment_mod.load(disagreeing)
    ex = course.exercise("01_spawn")
    assert ex.points_problem(30) == PROBLEM and ex.points_problem(25) is None
    report = {"tests": [{"nodeid": "solutions/01_spawn/test_hidden.py::t", "user_properties": [
        {"mpgrade": {"exercise": "01_spawn", "points": 30, "outcome": "passed", "name": "t"}}]}]}
    doc = results.build(report, course, {"id": "x"}, scope="all", sandbox="local", start_method="fork",
                        started_at=results.now(), only=("01_spawn",))
    assert doc["status"] == "error" and PROBLEM in doc["message"]


@pytest.mark.parametrize("command", [
    ["check", "01_spawn"],
    ["validate", "--sandbox", "local", "--repeat", "1"],
    ["release", "--notebooks", "out-notebooks"],
    ["grade", "exercises", "--out", "out-results", "--sandbox", "local"],
])
def test_every_authors_command_stops_before_grading_anyone(disagreeing, command):
    out = mpgrade(*command, cwd=disagreeing)
    assert out.returncode == 2, out.stdout + out.stderr
    assert PROBLEM in out.stderr and "assignment.toml" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (disagreeing / "out-results").exists() and not (disagreeing / "out-notebooks").exists()
    assert not (disagreeing / "validate.json").exists()


def test_a_students_copy_without_the_hidden_tests_checks_as_before(disagreeing):
    """Students get the public tests only: 5 of 25 points is no disagreement there."""
    shutil.rmtree(disagreeing / "solutions")
    out = mpgrade("check", "01_spawn", cwd=disagreeing)
    assert out.returncode == 1, out.stdout + out.stderr  # the stubs fail their tests
    assert "disagree" not in out.stderr and "01_spawn" in out.stdout
