"""Attacks on what a notebook check reads and what a release hands out (issue #18 finding 8).

The released folder is copied to every student: nothing of the hidden tests or solutions may
ride along, however the exercise folder was arranged. A notebook checked from Jupyter is read
as a handed-in one: its metadata can name only the assignment's modules.
"""

from __future__ import annotations

import nbformat
import pytest

from grader import assignment as assignment_mod
from grader import check
from grader.intake import notebook


def test_a_symlink_to_the_hidden_tests_in_an_exercise_folder_is_not_released(course_copy, tmp_path):
    hidden = course_copy / "solutions" / "01_spawn" / "test_hidden.py"
    (course_copy / "exercises" / "01_spawn" / "hints.md").symlink_to(hidden)
    (course_copy / "exercises" / "01_spawn" / "notes").symlink_to(course_copy / "solutions")
    course = assignment_mod.load(course_copy)
    out = tmp_path / "release"
    written = notebook.release_checkable(course, out)
    texts = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    assert written and not any(hidden.read_bytes() == t for t in texts)
    assert not [p for p in out.rglob("*") if p.is_symlink()]
    assert not (out / "exercises" / "01_spawn" / "notes").exists()


def test_a_notebook_whose_metadata_names_a_conftest_is_not_checked_as_one(course, tmp_path):
    book = nbformat.v4.new_notebook(metadata={"mpgrade": {"module": "conftest.py"}})
    book.cells = [nbformat.v4.new_code_cell("import os\nos._exit(0)\n")]
    path = tmp_path / "evil.ipynb"
    nbformat.write(book, path)
    with pytest.raises(assignment_mod.AssignmentError, match="names no module"):
        check.run_notebook_check(course, path)
