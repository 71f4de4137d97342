"""Grading an assignment's own references in one command: ``mpgrade grade course/solutions`` (#17).

Before, the references folder was read as a folder of submissions: each exercise folder (and
``mutants/``) became a submission of its own, each missing three modules of four.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from grader import assignment as assignment_mod
from grader import batch
from grader.intake.discovery import discover

from .conftest import REPO


def test_a_references_folder_is_one_submission_of_the_references_without_the_mutants(course_copy):
    mutant = course_copy / "solutions" / "mutants" / "whole_module"  # a mutant stored as a whole file
    mutant.mkdir()
    (mutant / "spawn.py").write_text("def worker_pids(n):\n    return []\n")
    course = assignment_mod.load(course_copy)
    subs, skipped = discover([course_copy / "solutions"], course)
    assert [s.id for s in subs] == ["solutions"] and skipped == []
    sub = subs[0]
    assert sub.error is None and sub.missing == [] and sub.ignored == []
    assert sub.files == {name: (ex.hidden_dir / name).read_bytes() for ex in course.exercises for name in ex.files}


def test_a_folder_of_students_one_named_like_an_exercise_is_still_a_folder_of_students(course, tmp_path):
    spawn = (REPO / "solutions" / "01_spawn" / "spawn.py").read_bytes()
    for student in ("01_spawn", "bob"):
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "spawn.py").write_bytes(spawn)
    subs, _ = discover([tmp_path / "class"], course)
    assert sorted(s.id for s in subs) == ["01_spawn", "bob"]


def test_mpgrade_grade_of_the_references_folder_gives_one_full_result(course_copy):
    out = subprocess.run(
        [sys.executable, "-m", "grader", "grade", "solutions", "--out", "results", "--sandbox", "local",
         "--jobs", "1"],
        cwd=course_copy, capture_output=True, text=True, timeout=600,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((course_copy / "results" / "summary.json").read_text())
    assert [s["id"] for s in summary["submissions"]] == ["solutions"], summary["submissions"]
    doc = json.loads((course_copy / "results" / "solutions.json").read_text())
    assert doc["status"] == "graded" and doc["score"] == doc["max_score"] == 100, doc["message"]


@pytest.mark.docker
def test_the_references_folder_scores_full_marks_in_docker(course_copy, docker_client, grading_image, tmp_path):
    from grader.sandbox.docker import DockerSandbox

    course = assignment_mod.load(course_copy)
    with DockerSandbox(grading_image, client=docker_client) as box:
        result = batch.run([course_copy / "solutions"], tmp_path / "out", course, box, jobs=1)
    assert list(result.documents) == ["solutions"]
    doc = result.documents["solutions"]
    assert doc["status"] == "graded" and doc["score"] == doc["max_score"] == 100, doc["message"]
