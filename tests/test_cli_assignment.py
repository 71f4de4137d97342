"""Which assignment a command means: ``--assignment DIR`` is that folder, never one above it.

A typo or a wrong folder named on the command line must be an error naming the missing
manifest: grading against a parent folder's assignment would grade with the wrong tests.
Without ``--assignment`` a command looks in the current folder and the ones above it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader import assignment as assignment_mod

from .test_cli import mpgrade


@pytest.mark.parametrize("command", [
    ["check"],
    ["grade", "no-such-submission", "--out", "out", "--sandbox", "local", "--warm", "0"],
    ["release", "--notebooks", "nb"],
    ["export", "gradescope-autograder", "--out", "ag.zip"],
])
def test_a_named_folder_without_a_manifest_is_an_error_not_its_parents_assignment(course_copy, command):
    named = course_copy / "exercises"  # inside the course: its parent holds assignment.toml
    out = mpgrade(*command, "--assignment", str(named), cwd=course_copy, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"no assignment.toml in {named}" in out.stderr, out.stderr
    assert not (course_copy / "nb").exists() and not (course_copy / "ag.zip").exists()


def test_without_assignment_a_command_finds_the_one_above(course_copy):
    out = mpgrade("release", "--notebooks", str(course_copy / "nb"), cwd=course_copy / "exercises")
    assert out.returncode == 0, out.stderr
    assert len(list((course_copy / "nb").glob("*.ipynb"))) == 4


def test_locate_takes_a_named_folder_as_it_is(course_copy: Path):
    with pytest.raises(assignment_mod.AssignmentError, match="no assignment.toml in"):
        assignment_mod.locate(course_copy / "exercises")
    assert assignment_mod.locate(course_copy) == course_copy
    assert assignment_mod.locate(None, cwd=course_copy / "exercises" / "01_spawn") == course_copy.resolve()
    with pytest.raises(assignment_mod.AssignmentError, match="or above"):
        assignment_mod.locate(None, cwd=Path("/"))


def test_the_report_command_takes_a_named_folder_as_it_is_too(course_copy, tmp_path):
    (tmp_path / "results").mkdir()
    out = mpgrade("report", str(tmp_path / "results"), "--out", str(tmp_path / "site"),
                  "--assignment", str(course_copy / "exercises"), cwd=course_copy, timeout=120)
    assert out.returncode == 2 and "no assignment.toml in" in out.stderr, out.stderr
